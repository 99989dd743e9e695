import { expect } from 'chai';
import http from 'node:http';
import { guardLookup, isForbiddenAddress, type ResolveAll } from '../core/webhooks/addresses.js';
import { startReceiver } from './support/receiver.js';

describe('isForbiddenAddress', () => {
  const table: Array<[string, boolean, string]> = [
    ['0.0.0.0', true, 'this network'],
    ['10.1.2.3', true, 'private'],
    ['100.64.0.1', true, 'CGNAT'],
    ['100.127.255.255', true, 'CGNAT, its last address'],
    ['100.128.0.1', false, 'just past CGNAT'],
    ['127.0.0.1', true, 'loopback'],
    ['127.255.255.254', true, 'loopback, all of 127/8'],
    ['169.254.169.254', true, 'the cloud metadata service'],
    ['172.16.0.1', true, 'private'],
    ['172.31.255.255', true, 'private, the last of 172.16/12'],
    ['172.32.0.1', false, 'just past 172.16/12'],
    ['192.168.1.1', true, 'private'],
    ['192.0.2.10', true, 'documentation'],
    ['198.18.0.1', true, 'benchmarking'],
    ['224.0.0.251', true, 'multicast'],
    ['255.255.255.255', true, 'broadcast'],
    ['8.8.8.8', false, 'public'],
    ['1.1.1.1', false, 'public'],
    ['::', true, 'unspecified'],
    ['::1', true, 'loopback'],
    ['fe80::1', true, 'link-local'],
    ['fd00:ec2::254', true, "AWS's IPv6 metadata service (unique local)"],
    ['fc00::1', true, 'unique local'],
    ['ff02::1', true, 'multicast'],
    ['2001:db8::1', true, 'documentation'],
    ['64:ff9b::a00:1', true, 'NAT64 of 10.0.0.1'],
    ['64:ff9b::808:808', true, 'NAT64, refused whole'],
    ['::ffff:127.0.0.1', true, 'IPv4-mapped loopback'],
    ['::FFFF:10.0.0.1', true, 'IPv4-mapped private, upper case'],
    ['::ffff:a00:1', true, 'IPv4-mapped private, as the URL parser writes it'],
    ['::ffff:8.8.8.8', false, 'IPv4-mapped public'],
    ['::127.0.0.1', true, 'IPv4-compatible loopback (the URL [::127.0.0.1])'],
    ['::7f00:1', true, 'IPv4-compatible loopback, as the URL parser writes it'],
    ['::a9fe:a9fe', true, 'IPv4-compatible metadata service'],
    ['::808:808', false, 'IPv4-compatible public'],
    ['::ffff:0:7f00:1', true, 'IPv4-translated loopback'],
    ['::ffff:0:10.0.0.1', true, 'IPv4-translated private, dotted'],
    ['2002:7f00:1::1', true, '6to4 of 127.0.0.1'],
    ['2002:a9fe:a9fe::', true, '6to4 of the metadata service'],
    ['2002:808:808::1', false, '6to4 of a public address'],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', true, 'Teredo whose client is 127.0.0.1 (inverted)'],
    ['2001:0:7f00:1::808:808', true, 'Teredo whose server is 127.0.0.1'],
    ['2001:0:4136:e378:8000:63bf:f7f7:f7f7', false, 'Teredo of public addresses (client 8.8.8.8)'],
    ['64:ff9b:1::a00:1', true, 'local-use NAT64'],
    ['fe80::1%eth0', true, 'link-local with a zone'],
    ['2606:4700::1111', false, 'public'],
    ['2a00:1450:4001:80b::200e', false, 'public'],
    ['localhost', true, 'not an address at all'],
    ['', true, 'empty'],
  ];
  for (const [address, forbidden, why] of table) {
    it(`${forbidden ? 'refuses' : 'allows'} ${address || "''"} (${why})`, () => {
      expect(isForbiddenAddress(address)).to.equal(forbidden);
    });
  }
});

describe('guardLookup', () => {
  /** A name that resolves, as a rebinding or split-horizon DNS may answer, to a public and then a loopback address. */
  const twoFaced: ResolveAll = (_hostname, _options, callback) =>
    callback(null, [
      { address: '93.184.215.14', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ]);

  it('refuses a name that resolves to a public and a loopback address, and nothing reaches the loopback one', async () => {
    const receiver = await startReceiver();
    try {
      const { port } = new URL(receiver.url);
      const outcome = await new Promise<NodeJS.ErrnoException | number>((resolve) => {
        const request = http.request(`http://two-faced.example:${port}/hook`, {
          method: 'POST',
          lookup: guardLookup(twoFaced),
          timeout: 5_000,
        });
        request.on('response', (response) => resolve(response.statusCode ?? 0));
        request.on('error', resolve);
        request.on('timeout', () => request.destroy());
        request.end('{}');
      });
      expect((outcome as NodeJS.ErrnoException).code).to.equal('EFORBIDDEN');
      expect(receiver.received).to.deep.equal([]);
    } finally {
      await receiver.close();
    }
  });

  it('lets a name through whose every address is allowed', async () => {
    const lookup = guardLookup((_hostname, _options, callback) => callback(null, [{ address: '8.8.8.8', family: 4 }]));
    const address = await new Promise<string>((resolve, reject) =>
      lookup('public.example', { all: false }, (err, found) => (err ? reject(err) : resolve(found as string))),
    );
    expect(address).to.equal('8.8.8.8');
  });
});
