/**
 * The target-address guard: a subscription may not point the relay at itself, its network or a
 * cloud metadata service. Checked twice — when the URL is created (`checkTargetUrl`, pure) and when
 * the delivery worker connects (`guardedLookup` inside `createGuardedAgents`), on the addresses DNS
 * actually returned, so a name that later resolves somewhere else cannot get around it.
 * `allowPrivate` (config `allow_private_targets`) turns both off for tests and closed networks.
 */
import dns, { type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns';
import http, { type ClientRequestArgs } from 'node:http';
import https from 'node:https';
import { isIPv4, isIPv6, type LookupFunction } from 'node:net';
import type { Duplex } from 'node:stream';

export type GuardRule =
  | 'invalid_url'
  | 'scheme'
  | 'credentials'
  | 'localhost_name'
  | 'private_name'
  | 'invalid_address'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link_local'
  | 'metadata'
  | 'unique_local'
  | 'ipv4_mapped'
  | 'ipv4_embedded'
  | 'multicast'
  | 'reserved';

export type GuardResult = { ok: true } | { ok: false; rule: GuardRule; message: string };

export interface GuardOptions {
  allowPrivate: boolean;
}

interface Refusal {
  rule: GuardRule;
  why: string;
}

function refused(rule: GuardRule, message: string): GuardResult {
  return { ok: false, rule, message: `target refused by rule ${rule}: ${message}` };
}

// ---------------------------------------------------------------------------------------------
// Addresses

function ipv4ToNumber(ip: string): number {
  return ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Eight 16-bit groups; `ip` must already be valid IPv6 (a zone id is dropped). */
function ipv6ToGroups(ip: string): number[] {
  let text = ip.split('%')[0] ?? '';
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const n = ipv4ToNumber(tail);
    text = `${text.slice(0, lastColon + 1)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? [] : Array<string>(8 - headGroups.length - restGroups.length).fill('0');
  return [...headGroups, ...zeros, ...restGroups].map((g) => parseInt(g, 16));
}

function v4Rule(cidr: string, rule: GuardRule, why: string) {
  const [base = '', bits = '32'] = cidr.split('/');
  const prefix = Number(bits);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return { test: (n: number) => ((n & mask) >>> 0) === ipv4ToNumber(base), refusal: { rule, why: `${why} (${cidr})` } };
}

// First match wins, so the specific entries come before the ranges that contain them.
const ipv4Rules = [
  v4Rule('169.254.169.254/32', 'metadata', 'the cloud metadata service'),
  v4Rule('168.63.129.16/32', 'metadata', 'the Azure host agent'),
  v4Rule('0.0.0.0/8', 'unspecified', '"this network", which reaches the local host'),
  v4Rule('127.0.0.0/8', 'loopback', 'loopback'),
  v4Rule('10.0.0.0/8', 'private', 'RFC 1918 private'),
  v4Rule('172.16.0.0/12', 'private', 'RFC 1918 private'),
  v4Rule('192.168.0.0/16', 'private', 'RFC 1918 private'),
  v4Rule('100.64.0.0/10', 'cgnat', 'carrier-grade NAT shared space'),
  v4Rule('169.254.0.0/16', 'link_local', 'link-local'),
  v4Rule('192.0.0.0/24', 'reserved', 'reserved for IETF protocol assignments'),
  v4Rule('192.0.2.0/24', 'reserved', 'reserved for documentation'),
  v4Rule('192.88.99.0/24', 'reserved', 'the deprecated 6to4 relay'),
  v4Rule('198.18.0.0/15', 'reserved', 'reserved for benchmarking'),
  v4Rule('198.51.100.0/24', 'reserved', 'reserved for documentation'),
  v4Rule('203.0.113.0/24', 'reserved', 'reserved for documentation'),
  v4Rule('224.0.0.0/4', 'multicast', 'multicast'),
  v4Rule('255.255.255.255/32', 'reserved', 'the broadcast address'),
  v4Rule('240.0.0.0/4', 'reserved', 'reserved'),
];

function refuseIpv4(n: number): Refusal | null {
  return ipv4Rules.find((r) => r.test(n))?.refusal ?? null;
}

function inPrefix6(groups: number[], base: number[], bits: number): boolean {
  for (let i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    const mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
    if (((groups[i] ?? 0) & mask) !== ((base[i] ?? 0) & mask)) return false;
  }
  return true;
}

function v6Prefix(cidr: string) {
  const [base = '', bits = '128'] = cidr.split('/');
  const groups = ipv6ToGroups(base);
  return (g: number[]) => inPrefix6(g, groups, Number(bits));
}

/** An IPv6 form that carries an IPv4 address is judged by that address. */
function refuseEmbedded(rule: GuardRule, form: string, high: number, low: number): Refusal | null {
  const v4 = ((high << 16) | low) >>> 0;
  const inner = refuseIpv4(v4);
  return inner && { rule, why: `${form} of ${numberToIpv4(v4)}, which is ${inner.why}` };
}

const isMapped = v6Prefix('::ffff:0:0/96');
const isNat64 = v6Prefix('64:ff9b::/96');
const is6to4 = v6Prefix('2002::/16');
const isGlobalUnicast = v6Prefix('2000::/3');

const ipv6Rules: { test: (g: number[]) => boolean; refusal: Refusal }[] = [
  ['::/128', 'unspecified', 'unspecified'],
  ['::1/128', 'loopback', 'loopback'],
  ['fd00:ec2::254/128', 'metadata', 'the AWS metadata service'],
  ['fc00::/7', 'unique_local', 'unique-local'],
  ['fe80::/10', 'link_local', 'link-local'],
  ['ff00::/8', 'multicast', 'multicast'],
  ['2001::/32', 'reserved', 'reserved for Teredo tunnelling'],
  ['2001:db8::/32', 'reserved', 'reserved for documentation'],
  ['3fff::/20', 'reserved', 'reserved for documentation'],
].map(([cidr = '', rule, why]) => ({ test: v6Prefix(cidr), refusal: { rule: rule as GuardRule, why: `${why} (${cidr})` } }));

function refuseIpv6(g: number[]): Refusal | null {
  const [, , , , , , g6 = 0, g7 = 0] = g;
  if (isMapped(g)) return refuseEmbedded('ipv4_mapped', 'the IPv4-mapped form (::ffff:0:0/96)', g6, g7);
  if (isNat64(g)) return refuseEmbedded('ipv4_embedded', 'the NAT64 form (64:ff9b::/96)', g6, g7);
  if (is6to4(g)) return refuseEmbedded('ipv4_embedded', 'the 6to4 form (2002::/16)', g[1] ?? 0, g[2] ?? 0);
  const match = ipv6Rules.find((r) => r.test(g));
  if (match) return match.refusal;
  // Only 2000::/3 is handed out as global unicast; everything else (IPv4-compatible ::/96,
  // site-local, discard-only, local-use NAT64, …) has no business being a webhook target.
  return isGlobalUnicast(g) ? null : { rule: 'reserved', why: 'outside global unicast (2000::/3)' };
}

function refuseAddress(ip: string): Refusal | null {
  if (isIPv4(ip)) return refuseIpv4(ipv4ToNumber(ip));
  if (isIPv6(ip)) return refuseIpv6(ipv6ToGroups(ip));
  // Fail closed: something that is not a plain address is never treated as public.
  return { rule: 'invalid_address', why: 'not an IP address' };
}

/**
 * The rule that refuses this IP address, or null for a public one. Accepts plain IPv4 dotted
 * quads and IPv6 (with or without a zone id); anything else is `invalid_address`. IPv4-mapped
 * addresses are judged by the IPv4 inside and, when refused, report `ipv4_mapped` (NAT64 and 6to4
 * report `ipv4_embedded`); the message says which rule the inner address broke.
 */
export function classifyAddress(ip: string): GuardRule | null {
  return refuseAddress(ip)?.rule ?? null;
}

function refusalMessage(address: string, r: Refusal, host?: string): string {
  const named = host !== undefined && host !== address ? `${host} resolved to ${address}` : address;
  return `target refused by rule ${r.rule}: ${named} is ${r.why}`;
}

// ---------------------------------------------------------------------------------------------
// URLs (creation time)

/**
 * Names that can only mean this machine or a local network. Refused by name so the error is
 * immediate and clear; the connect-time check would catch most of them anyway.
 */
function refuseHostname(host: string): GuardResult | null {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name === 'localhost' || name.endsWith('.localhost') || name === 'localhost.localdomain') {
    return refused('localhost_name', `${host} names the local host`);
  }
  // RFC 6762 mDNS (.local), RFC 8375 home networks, the ICANN private-use .internal (where
  // metadata.google.internal lives), and dotless names that resolve through local search domains.
  const privateSuffixes = ['.local', '.localdomain', '.internal', '.home.arpa'];
  if (!name.includes('.') || privateSuffixes.some((s) => name.endsWith(s))) {
    return refused('private_name', `${host} is a local-network name`);
  }
  return null;
}

/**
 * Creation-time check of a subscription URL. Pure: no DNS. `new URL` has already turned decimal,
 * octal, hex and short IPv4 spellings (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) into dotted
 * quads and compressed IPv6, so only canonical forms reach the address rules. A hostname that
 * passes here is checked again on its resolved addresses at connect time.
 */
export function checkTargetUrl(url: string, opts: GuardOptions): GuardResult {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return refused('invalid_url', 'not a valid absolute URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return refused('scheme', `${parsed.protocol} is not http: or https:`);
  }
  // Credentials would be sent to the subscriber on every delivery and end up in logs; refused even with allowPrivate.
  if (parsed.username !== '' || parsed.password !== '') {
    return refused('credentials', 'URLs with a user name or password are not accepted');
  }
  if (parsed.hostname === '') return refused('invalid_url', 'the URL has no host');
  if (opts.allowPrivate) return { ok: true };

  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  if (isIPv4(host) || isIPv6(host)) {
    const r = refuseAddress(host);
    return r ? { ok: false, rule: r.rule, message: refusalMessage(host, r) } : { ok: true };
  }
  return refuseHostname(host) ?? { ok: true };
}

// ---------------------------------------------------------------------------------------------
// Connections (connect time)

/** Thrown (through the socket) when a connection would reach a refused address. */
export class TargetRefusedError extends Error {
  override name = 'TargetRefusedError';
  readonly code = 'ETARGETREFUSED';
  constructor(
    readonly rule: GuardRule,
    readonly address: string,
    message: string,
  ) {
    super(message);
  }
}

/** `dns.lookup` with `all: true`; injectable so tests need no real DNS. */
export type LookupAll = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const systemLookup: LookupAll = (hostname, options, callback) => dns.lookup(hostname, options, callback);

export interface GuardedLookupOptions extends GuardOptions {
  resolve?: LookupAll;
}

/**
 * A `lookup` for `net.connect`, `http.Agent` and `https.Agent`: resolves every address and fails
 * with `ETARGETREFUSED` if any of them is refused — one bad answer in a mixed set is enough, since
 * the socket may try any of them.
 */
export function guardedLookup(opts: GuardedLookupOptions): LookupFunction {
  const resolve = opts.resolve ?? systemLookup;
  return (hostname: string, options: LookupOptions, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      if (!opts.allowPrivate) {
        for (const { address } of addresses) {
          const r = refuseAddress(address);
          if (r) return callback(new TargetRefusedError(r.rule, address, refusalMessage(address, r, hostname)), '');
        }
      }
      const [first] = addresses;
      if (options.all) return callback(null, addresses);
      if (!first) {
        return callback(Object.assign(new Error(`no addresses for ${hostname}`), { code: 'ENOTFOUND', hostname }), '');
      }
      callback(null, first.address, first.family);
    });
  };
}

/**
 * `net.connect` skips `lookup` for an IP literal, so the agent checks literals itself before
 * connecting — the creation-time check should already have refused them; this is the backstop.
 */
function refuseLiteralTargets<A extends http.Agent>(agent: A, opts: GuardOptions): A {
  const connect = agent.createConnection.bind(agent);
  agent.createConnection = (options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void) => {
    const raw = options.host ?? options.hostname ?? '';
    const host = raw.startsWith('[') ? raw.slice(1, -1) : raw;
    const r = opts.allowPrivate || !(isIPv4(host) || isIPv6(host)) ? null : refuseAddress(host);
    if (!r) return connect(options, callback);
    const err = new TargetRefusedError(r.rule, host, refusalMessage(host, r));
    if (!callback) throw err;
    (callback as (err: Error) => void)(err);
    return undefined;
  };
  return agent;
}

export interface GuardedAgents {
  http: http.Agent;
  https: https.Agent;
}

/**
 * Keep-alive agents whose every new connection goes through the guard. The delivery worker sends
 * with `node:http`/`node:https` and these agents (undici is not a dependency and Node's bundled copy
 * cannot be imported). A kept-alive socket was checked when it connected, so reuse is safe.
 */
export function createGuardedAgents(opts: GuardedLookupOptions & { maxSockets?: number }): GuardedAgents {
  // Idle sockets are closed after 4 s, before the 5 s many servers (Node's among them) allow, so
  // a socket is rarely reused just as the receiver closes it.
  const common = { keepAlive: true, timeout: 4000, lookup: guardedLookup(opts), ...(opts.maxSockets ? { maxSockets: opts.maxSockets } : {}) };
  return {
    http: refuseLiteralTargets(new http.Agent(common), opts),
    https: refuseLiteralTargets(new https.Agent(common), opts),
  };
}
