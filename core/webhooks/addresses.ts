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
  ['64:ff9b::', 96], // NAT64 of IPv4 addresses (checked as IPv4 below, refused whole here)
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local (fd00:ec2::254 is AWS's metadata service)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  FORBIDDEN.addSubnet(network, prefix, 'ipv6');
}

/** An IPv4 address written as IPv6 (`::ffff:10.0.0.1`), as the IPv4 address it is. */
const unmapped = (address: string): string => /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;

/** True for an address webhooks may not reach unless WEBHOOK_ALLOW_PRIVATE=true. */
export function isForbiddenAddress(address: string): boolean {
  const plain = unmapped(address);
  const family = isIP(plain);
  if (family === 0) return true;
  return FORBIDDEN.check(plain, family === 4 ? 'ipv4' : 'ipv6');
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

/**
 * The `lookup` of a webhook's connection: resolves the name and fails the connection when any address it
 * gives is forbidden, so the address checked is the address used. (An address written in the URL is not looked
 * up by Node: assertSendable checks it.)
 */
export const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true, verbatim: true }, (err, addresses: LookupAddress[]) => {
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

/** Before a send: a URL written with a forbidden address is refused here, as names are by guardedLookup. */
export function assertSendable(url: URL): void {
  const host = hostOf(url);
  if (isIP(host) && isForbiddenAddress(host)) throw forbiddenAddress(url, host);
}
