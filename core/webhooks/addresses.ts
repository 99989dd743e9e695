// Where a webhook may be sent. A service that POSTs to URLs its clients choose must not become their way into
// the cluster (SSRF): unless WEBHOOK_ALLOW_PRIVATE says so, loopback, private, link-local (the cloud metadata
// service at 169.254.169.254 included), CGNAT, multicast and reserved addresses are refused. The check is made at
// registration, to answer early, and again by the connection itself at every send (guardedLookup): a name that
// resolved to a public address yesterday may resolve to 10.0.0.1 today (DNS rebinding), and the address checked is
// the one connected to.
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

const FORBIDDEN = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // CGNAT (carrier-grade NAT, also used inside some clusters)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local: the metadata service of AWS, GCP, Azure, OpenStack
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
] as const) {
  FORBIDDEN.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b::', 96], // NAT64 of IPv4 addresses, refused whole
  ['64:ff9b:1::', 48], // NAT64 for local use (RFC 8215)
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local (fd00:ec2::254 is AWS's metadata service)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  FORBIDDEN.addSubnet(network, prefix, 'ipv6');
}

/**
 * The eight 16-bit groups of an IPv6 address (`::` expanded, a trailing dotted IPv4 read as two groups, a zone
 * dropped); null when it is not one.
 */
function ipv6Groups(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address.replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groupsOf = (part: string) => (part ? part.split(':').map((group) => parseInt(group, 16)) : []);
  const [before, after] = [groupsOf(head), groupsOf(tail ?? '')];
  return tail === undefined
    ? before
    : [...before, ...Array<number>(8 - before.length - after.length).fill(0), ...after];
}

const ipv4Of = (high: number, low: number): string => [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');

/**
 * The IPv4 addresses an IPv6 address carries, which route to them: IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible
 * (`::/96`, deprecated), IPv4-translated (`::ffff:0:0:0/96`), 6to4 (`2002::/16`, the address in bits 16-47) and
 * Teredo (`2001::/32`, the server in bits 32-63 and the client, inverted, in the last 32). NAT64 is refused whole.
 */
function embeddedIpv4(groups: number[]): string[] {
  const [g0, g1, g2, g3, g4, g5, g6, g7] = groups as [number, number, number, number, number, number, number, number];
  const zeros = (count: number) => groups.slice(0, count).every((group) => group === 0);
  if (zeros(5) && (g5 === 0xffff || g5 === 0)) return [ipv4Of(g6, g7)];
  if (zeros(4) && g4 === 0xffff && g5 === 0) return [ipv4Of(g6, g7)];
  if (g0 === 0x2002) return [ipv4Of(g1, g2)];
  if (g0 === 0x2001 && g1 === 0) return [ipv4Of(g2, g3), ipv4Of(~g6 & 0xffff, ~g7 & 0xffff)];
  return [];
}

/** True for an address webhooks may not reach unless WEBHOOK_ALLOW_PRIVATE=true. */
export function isForbiddenAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  if (family === 4) return FORBIDDEN.check(address, 'ipv4');
  if (FORBIDDEN.check(address, 'ipv6')) return true;
  // Every spelling of an IPv6 address that embeds an IPv4 one is checked as that IPv4 address too.
  return embeddedIpv4(ipv6Groups(address)!).some((ipv4) => FORBIDDEN.check(ipv4, 'ipv4'));
}

export interface UrlPolicy {
  allowHttp: boolean;
  allowPrivate: boolean;
}

/** A webhook URL that may not be used, and why, in a sentence for the client. */
export class WebhookUrlError extends Error {
  override name = 'WebhookUrlError';
}

const MAX_URL_LENGTH = 2048;

/** The URL, parsed and checked against the policy, its name resolved; or a WebhookUrlError saying what is wrong. */
export async function checkWebhookUrl(raw: string, policy: UrlPolicy): Promise<URL> {
  if (raw.length > MAX_URL_LENGTH) throw new WebhookUrlError(`The URL is longer than ${MAX_URL_LENGTH} characters.`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookUrlError('The URL is not an absolute URL.');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
    throw new WebhookUrlError(
      policy.allowHttp
        ? 'The URL must be http:// or https://.'
        : 'The URL must be https:// (plain http is allowed only with WEBHOOK_ALLOW_HTTP=true).',
    );
  }
  if (url.username || url.password) {
    throw new WebhookUrlError('The URL may not carry credentials; verify the signature instead.');
  }
  if (url.hash) throw new WebhookUrlError('The URL may not have a #fragment.');
  if (policy.allowPrivate) return url;
  const addresses = await resolve(hostOf(url));
  const forbidden = addresses.find(isForbiddenAddress);
  if (forbidden !== undefined) throw forbiddenAddress(url, forbidden);
  return url;
}

/** The URL's host as a name or a bare address (no IPv6 brackets). */
const hostOf = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, '$1');

const forbiddenAddress = (url: URL, address: string) =>
  new WebhookUrlError(
    `${url.hostname} resolves to ${address}, a loopback, private, link-local or reserved address, which webhooks may not reach (unless WEBHOOK_ALLOW_PRIVATE=true).`,
  );

async function resolve(host: string): Promise<string[]> {
  if (isIP(host)) return [host];
  return new Promise((done, fail) =>
    dnsLookup(host, { all: true, verbatim: true } satisfies LookupAllOptions, (err, addresses: LookupAddress[]) => {
      if (err) fail(new WebhookUrlError(`${host} does not resolve (${err.code ?? err.message}).`));
      else done(addresses.map((entry) => entry.address));
    }),
  );
}

/** Resolves a name to every address it has, as `dns.lookup` with `all: true` does. */
export type ResolveAll = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/**
 * The `lookup` of a webhook's connection, over `resolve`: fails the connection when any address the name gives is
 * forbidden, so the address checked is the address used (a connection may try every address it was given).
 */
export function guardLookup(resolve: ResolveAll): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true, verbatim: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const forbidden = addresses.find((entry) => isForbiddenAddress(entry.address));
      if (forbidden) {
        const refused = Object.assign(
          new WebhookUrlError(`${hostname} resolves to ${forbidden.address}, which webhooks may not reach.`),
          { code: 'EFORBIDDEN' },
        );
        return callback(refused, '', 0);
      }
      if (options.all) return (callback as (err: null, addresses: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}

/** The `lookup` of every webhook connection: the system's resolver, guarded. (An address written in the URL is not looked up by Node: assertSendable checks it.) */
export const guardedLookup: LookupFunction = guardLookup((hostname, options, callback) =>
  dnsLookup(hostname, options, callback),
);

/** Before a send: a URL written with a forbidden address is refused here, as names are by guardedLookup. */
export function assertSendable(url: URL): void {
  const host = hostOf(url);
  if (isIP(host) && isForbiddenAddress(host)) throw forbiddenAddress(url, host);
}
