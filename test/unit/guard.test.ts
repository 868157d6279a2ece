import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkTargetUrl,
  classifyAddress,
  createGuardedAgents,
  type GuardedAgents,
  guardedLookup,
  type LookupAll,
  TargetRefusedError,
} from '../../src/fanout/guard.js';

const strict = { allowPrivate: false };
const open = { allowPrivate: true };

describe('URL parsing the guard relies on', () => {
  // If WHATWG URL ever stopped normalising these, the address rules would see raw spellings.
  const spellings: [string, string][] = [
    ['http://2130706433/', '127.0.0.1'],
    ['http://0177.0.0.1/', '127.0.0.1'],
    ['http://0x7f000001/', '127.0.0.1'],
    ['http://0x7f.1/', '127.0.0.1'],
    ['http://127.1/', '127.0.0.1'],
    ['http://0/', '0.0.0.0'],
    ['http://%31%32%37.0.0.1/', '127.0.0.1'],
    ['http://[::ffff:127.0.0.1]/', '[::ffff:7f00:1]'],
    ['http://[0:0:0:0:0:ffff:7f00:1]/', '[::ffff:7f00:1]'],
  ];
  it.each(spellings)('new URL(%s) has hostname %s', (url, hostname) => {
    expect(new URL(url).hostname).toBe(hostname);
  });
});

describe('checkTargetUrl', () => {
  const refusedUrls: [string, string][] = [
    ['http://127.0.0.1/', 'loopback'],
    ['http://2130706433/', 'loopback'],
    ['http://0177.0.0.1/', 'loopback'],
    ['http://0x7f000001/', 'loopback'],
    ['http://0x7f.1/', 'loopback'],
    ['http://127.1/', 'loopback'],
    ['http://[::1]/', 'loopback'],
    ['http://[::ffff:127.0.0.1]/', 'ipv4_mapped'],
    ['http://[::ffff:7f00:1]/', 'ipv4_mapped'],
    ['http://[::ffff:a9fe:a9fe]/', 'ipv4_mapped'],
    ['http://[64:ff9b::10.0.0.1]/', 'ipv4_embedded'],
    ['http://[2002:c0a8:101::1]/', 'ipv4_embedded'],
    ['http://[::127.0.0.1]/', 'reserved'],
    ['http://[fd00::1]/', 'unique_local'],
    ['http://[fc00::1]/', 'unique_local'],
    ['http://[fe80::1]/', 'link_local'],
    ['http://[ff02::1]/', 'multicast'],
    ['http://[2001:db8::1]/', 'reserved'],
    ['http://[fd00:ec2::254]/', 'metadata'],
    ['http://[::]/', 'unspecified'],
    ['http://169.254.169.254/latest/meta-data', 'metadata'],
    ['http://2852039166/latest/meta-data', 'metadata'],
    ['http://169.254.1.1/', 'link_local'],
    ['http://100.64.0.1/', 'cgnat'],
    ['http://10.0.0.1/', 'private'],
    ['http://012.0.0.1/', 'private'],
    ['http://172.16.0.1/', 'private'],
    ['http://172.31.255.255/', 'private'],
    ['http://192.168.1.1/', 'private'],
    ['http://0xc0.0xa8.1.1/', 'private'],
    ['http://0.0.0.0/', 'unspecified'],
    ['http://0/', 'unspecified'],
    ['http://192.0.2.10/', 'reserved'],
    ['http://198.18.0.1/', 'reserved'],
    ['http://224.0.0.1/', 'multicast'],
    ['http://240.0.0.1/', 'reserved'],
    ['http://255.255.255.255/', 'reserved'],
    ['http://localhost/', 'localhost_name'],
    ['http://LOCALHOST./', 'localhost_name'],
    ['http://api.localhost:8080/', 'localhost_name'],
    ['http://localhost.localdomain/', 'localhost_name'],
    ['http://metadata.google.internal/', 'private_name'],
    ['http://printer.local/', 'private_name'],
    ['http://router.home.arpa/', 'private_name'],
    ['http://intranet/', 'private_name'],
    ['ftp://example.com/', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['javascript:alert(1)', 'scheme'],
    ['http://user:pass@example.com/', 'credentials'],
    ['https://token@example.com/', 'credentials'],
    ['not a url', 'invalid_url'],
  ];
  it.each(refusedUrls)('refuses %s by rule %s', (url, rule) => {
    const result = checkTargetUrl(url, strict);
    expect(result).toMatchObject({ ok: false, rule });
    if (!result.ok) expect(result.message).toContain(rule);
  });

  const acceptedUrls = [
    'https://example.com/hook',
    'https://93.184.216.34/',
    'http://[2606:4700::1111]/',
    'https://hooks.example.org:8443/path?x=1',
    'http://[64:ff9b::5db8:d822]/',
    'http://172.32.0.1/',
    'http://100.128.0.1/',
  ];
  it.each(acceptedUrls)('accepts %s', (url) => {
    expect(checkTargetUrl(url, strict)).toEqual({ ok: true });
  });

  it('the message names the rule and the address it refused', () => {
    expect(checkTargetUrl('http://0x7f000001/', strict)).toMatchObject({
      message: 'target refused by rule loopback: 127.0.0.1 is loopback (127.0.0.0/8)',
    });
    expect(checkTargetUrl('http://[::ffff:10.1.2.3]/', strict)).toMatchObject({
      message:
        'target refused by rule ipv4_mapped: ::ffff:a01:203 is the IPv4-mapped form (::ffff:0:0/96) of 10.1.2.3, ' +
        'which is RFC 1918 private (10.0.0.0/8)',
    });
  });

  const addressAndNameRules = refusedUrls.filter(([, rule]) => !['scheme', 'credentials', 'invalid_url'].includes(rule));
  it.each(addressAndNameRules)('with allowPrivate, accepts %s', (url) => {
    expect(checkTargetUrl(url, open)).toEqual({ ok: true });
  });

  it('with allowPrivate, still refuses other schemes and credentials', () => {
    expect(checkTargetUrl('ftp://10.0.0.1/', open)).toMatchObject({ ok: false, rule: 'scheme' });
    expect(checkTargetUrl('http://u:p@10.0.0.1/', open)).toMatchObject({ ok: false, rule: 'credentials' });
  });
});

describe('classifyAddress', () => {
  const table: [string, string | null][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.255.255.255', 'private'],
    ['172.15.255.255', null],
    ['172.16.0.0', 'private'],
    ['100.63.255.255', null],
    ['100.127.255.255', 'cgnat'],
    ['169.254.169.254', 'metadata'],
    ['169.254.169.253', 'link_local'],
    ['192.0.0.8', 'reserved'],
    ['198.51.100.1', 'reserved'],
    ['203.0.113.7', 'reserved'],
    ['198.19.255.255', 'reserved'],
    ['198.20.0.0', null],
    ['223.255.255.255', null],
    ['8.8.8.8', null],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['::ffff:8.8.8.8', null],
    ['::ffff:192.168.0.1', 'ipv4_mapped'],
    ['64:ff9b::192.168.0.1', 'ipv4_embedded'],
    ['fe80::1%eth0', 'link_local'],
    ['febf::1', 'link_local'],
    ['fec0::1', 'reserved'],
    ['fd00:ec2::254', 'metadata'],
    ['fd00:ec2::253', 'unique_local'],
    ['2001:4860:4860::8888', null],
    ['2001:db8:ffff::1', 'reserved'],
    ['127.1', 'invalid_address'],
    ['example.com', 'invalid_address'],
  ];
  it.each(table)('%s → %s', (ip, rule) => {
    expect(classifyAddress(ip)).toBe(rule);
  });
});

describe('guardedLookup', () => {
  const answer =
    (...addresses: string[]): LookupAll =>
    (_host, _options, callback) =>
      callback(
        null,
        addresses.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 })),
      );

  function lookup(resolve: LookupAll, options: { all?: boolean }, allowPrivate = false) {
    return new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }>((resolvePromise) =>
      guardedLookup({ allowPrivate, resolve })('hooks.example.org', options, (err, address, family) =>
        resolvePromise({ err, address, family }),
      ),
    );
  }

  it('passes public answers through, as a list or as the first address', async () => {
    const resolve = answer('93.184.216.34', '2606:4700::1111');
    expect((await lookup(resolve, { all: true })).address).toEqual([
      { address: '93.184.216.34', family: 4 },
      { address: '2606:4700::1111', family: 6 },
    ]);
    expect(await lookup(resolve, {})).toEqual({ err: null, address: '93.184.216.34', family: 4 });
  });

  it('refuses a name when any of its addresses is refused', async () => {
    const { err } = await lookup(answer('93.184.216.34', '10.0.0.7'), { all: true });
    expect(err).toBeInstanceOf(TargetRefusedError);
    expect(err).toMatchObject({ code: 'ETARGETREFUSED', rule: 'private', address: '10.0.0.7' });
    expect(err?.message).toBe('target refused by rule private: hooks.example.org resolved to 10.0.0.7 is RFC 1918 private (10.0.0.0/8)');
  });

  it('a name that used to resolve publicly is refused once its answer changes to loopback', async () => {
    const answers = [['93.184.216.34'], ['127.0.0.1']];
    const rebinding: LookupAll = (host, options, callback) => answer(...(answers.shift() ?? []))(host, options, callback);
    const lookupFn = guardedLookup({ allowPrivate: false, resolve: rebinding });
    const once = () =>
      new Promise<NodeJS.ErrnoException | null>((resolve) => lookupFn('hooks.example.org', {}, (err) => resolve(err)));
    expect(await once()).toBeNull();
    expect(await once()).toMatchObject({ code: 'ETARGETREFUSED', rule: 'loopback' });
  });

  it('with allowPrivate, passes private answers through', async () => {
    expect(await lookup(answer('10.0.0.7'), {}, true)).toEqual({ err: null, address: '10.0.0.7', family: 4 });
  });

  it('passes resolver errors through unchanged', async () => {
    const failing: LookupAll = (_h, _o, callback) => callback(Object.assign(new Error('nope'), { code: 'ENOTFOUND' }), []);
    expect((await lookup(failing, {})).err).toMatchObject({ code: 'ENOTFOUND' });
  });
});

describe('guarded agents at connect time', () => {
  let server: http.Server;
  let port: number;
  const agents: GuardedAgents[] = [];

  beforeAll(async () => {
    server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const a of agents) {
      a.http.destroy();
      a.https.destroy();
    }
    await new Promise((resolve) => server.close(resolve));
  });

  function get(url: string, allowPrivate: boolean) {
    const pair = createGuardedAgents({ allowPrivate });
    agents.push(pair);
    return new Promise<{ status?: number; body?: string; err?: NodeJS.ErrnoException & { rule?: string } }>((resolve) => {
      const req = http.get(url, { agent: pair.http }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', (err) => resolve({ err }));
    });
  }

  it('the agents keep connections alive', () => {
    const pair = createGuardedAgents({ allowPrivate: false });
    agents.push(pair);
    expect((pair.http as unknown as { keepAlive: boolean }).keepAlive).toBe(true);
    expect((pair.https as unknown as { keepAlive: boolean }).keepAlive).toBe(true);
  });

  it('a hostname that resolves to loopback is refused when connecting', async () => {
    // Bypasses checkTargetUrl on purpose: this is the DNS-changed-after-creation case.
    const { err } = await get(`http://localhost:${port}/`, false);
    expect(err).toBeInstanceOf(TargetRefusedError);
    expect(err).toMatchObject({ code: 'ETARGETREFUSED', rule: 'loopback' });
    expect(err?.message).toMatch(/^target refused by rule loopback: localhost resolved to (127\.0\.0\.1|::1)/);
  });

  it('an IP literal is refused when connecting, although net skips lookup for it', async () => {
    const { err } = await get(`http://127.0.0.1:${port}/`, false);
    expect(err).toMatchObject({ code: 'ETARGETREFUSED', rule: 'loopback', address: '127.0.0.1' });
  });

  it('with allowPrivate, the same requests reach the server', async () => {
    expect(await get(`http://localhost:${port}/`, true)).toEqual({ status: 200, body: 'ok' });
    expect(await get(`http://127.0.0.1:${port}/`, true)).toEqual({ status: 200, body: 'ok' });
  });
});
