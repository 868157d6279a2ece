import { createHmac } from 'node:crypto';
import { asc, isNotNull, sql } from 'drizzle-orm';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CALLBACK_BYTES } from '../../src/callbacks/body.js';
import { jobCallbackToken, providerCallbackToken } from '../../src/callbacks/tokens.js';
import { callbackReceipts, jobEvents, jobs, subscriptions } from '../../src/db/schema.js';
import { errorStatus } from '../../src/errors.js';
import { dbKind } from '../helpers/db.js';
import { ADMIN_KEY, SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';

/**
 * Hostile input (issue 7, "Reliability suite"): whatever arrives on the public callback routes or
 * the API, the relay answers a 4xx in its one error shape (never a 5xx, never a crash), and stores
 * nothing it refused. Runs are kept few: each property is a handful of seconds.
 */

const API_LIMIT = 256 * 1024;
const WEBHOOK_SECRET = 'toapis-hostile-webhook-secret';
const NO_PROVIDER = 'http://127.0.0.1:9'; // nothing listens: a provider the relay asks would fail
const RUNS = 40;
/** A fixed seed: every run tries the same inputs, so a failure is reproducible and the suite deterministic. Change it to explore. */
const SEED = 20_261_122;
const runs = (numRuns: number) => ({ numRuns, seed: SEED });

let relay: TestRelay;

/** A job per kind of provider, tracked once, that no refused request may change. */
const target: Record<'veo' | 'trusting' | 'signed', { id: string; taskId: string }> = {} as never;

beforeAll(async () => {
  relay = await startTestRelay({
    veo: { kind: 'aivideoapi', base_url: NO_PROVIDER, api_key: 'k', timeout_s: 1 },
    trusting: { kind: 'aivideoapi', base_url: NO_PROVIDER, api_key: 'k', verify_by_fetch: false },
    signed: { kind: 'toapis', base_url: NO_PROVIDER, api_key: 'k', webhook_secret: WEBHOOK_SECRET },
    polled: { kind: 'video-generations', base_url: NO_PROVIDER, api_key: 'k' },
  });
  for (const provider of ['veo', 'trusting', 'signed'] as const) {
    const taskId = `hostile-${provider}-task`;
    const res = await relay.api('POST', '/v1/jobs/track', { provider, provider_task_id: taskId });
    expect(res.status).toBe(201);
    target[provider] = { id: ((await res.json()) as { id: string }).id, taskId };
  }
});
afterAll(async () => {
  await relay?.close();
});

// ---------------------------------------------------------------------------------------------
// What the database holds, to show a refused request left no trace.

interface Snapshot {
  jobs: unknown[];
  acceptedReceipts: number;
  events: number;
  subscriptions: number;
}

async function snapshot(): Promise<Snapshot> {
  const db = relay.deps.db;
  const [jobRows, [receipts], [events], [subs]] = await Promise.all([
    db
      .select({ id: jobs.id, status: jobs.status, progress: jobs.progress, eventSeq: jobs.eventSeq, taskId: jobs.providerTaskId, updatedAt: jobs.updatedAt })
      .from(jobs)
      .orderBy(asc(jobs.id)),
    db.select({ n: sql<number>`count(*)::int` }).from(callbackReceipts).where(isNotNull(callbackReceipts.jobId)),
    db.select({ n: sql<number>`count(*)::int` }).from(jobEvents),
    db.select({ n: sql<number>`count(*)::int` }).from(subscriptions),
  ]);
  return { jobs: jobRows, acceptedReceipts: receipts!.n, events: events!.n, subscriptions: subs!.n };
}

/** The answer is a 4xx (one of `allowed`, when given) in the error shape, with the status its code stands for. */
async function expectRefused(res: Response, allowed?: number[]): Promise<void> {
  const text = await res.text();
  expect(res.status, text.slice(0, 300)).toBeGreaterThanOrEqual(400);
  expect(res.status, text.slice(0, 300)).toBeLessThan(500);
  if (allowed) expect(allowed, text.slice(0, 300)).toContain(res.status);
  expect(res.headers.get('content-type') ?? '').toMatch(/^application\/json/);
  const body = JSON.parse(text) as { error: { code: keyof typeof errorStatus; message: string; request_id: string } };
  expect(body).toEqual({
    error: expect.objectContaining({ code: expect.any(String), message: expect.any(String), request_id: expect.any(String) }),
  });
  expect(errorStatus[body.error.code]).toBe(res.status);
  expect(body.error.request_id.length).toBeGreaterThan(0);
}

/** Not a 5xx; a 4xx is in the error shape. */
async function expectNoServerError(res: Response): Promise<void> {
  if (res.status >= 400) return expectRefused(res.clone());
  expect(res.status, await res.clone().text().then((t) => t.slice(0, 300))).toBeLessThan(400);
}

/** Runs `send`, expects it refused, and that the database is as it was. */
async function refusedAndNothingStored(send: () => Promise<Response>, allowed?: number[]): Promise<void> {
  const before = await snapshot();
  await expectRefused(await send(), allowed);
  expect(await snapshot()).toEqual(before);
}

// ---------------------------------------------------------------------------------------------
// Requests.

function post(path: string, body: BodyInit | null, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Response> {
  return Promise.resolve(relay.app.request(path, { method: 'POST', headers, body }));
}
function apiPost(path: string, body: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
  return post(path, body, { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...headers });
}
function apiGet(pathAndQuery: string): Promise<Response> {
  return Promise.resolve(relay.app.request(pathAndQuery, { headers: { authorization: `Bearer ${ADMIN_KEY}` } }));
}

const jobUrl = (provider: string, jobId: string) => `/callbacks/${provider}/${jobId}/${jobCallbackToken(SECRET, provider, jobId)}`;
const providerUrl = (provider: string) => `/callbacks/${provider}/${providerCallbackToken(SECRET, provider)}`;

const aivideoapiCompleted = (taskId: string) => ({ id: taskId, status: 'completed', output: { urls: ['https://x.example/v.mp4'] } });
const toapisCompleted = (taskId: string, eventId = 'evt_hostile') => ({
  id: eventId,
  type: 'generation.completed',
  created_at: Math.floor(Date.now() / 1000),
  data: { task_id: taskId, status: 'completed', progress: 100, result: { type: 'video', data: [{ url: 'https://x.example/v.mp4', format: 'mp4' }] } },
});

function toapisHeaders(raw: Uint8Array | string, opts: { id?: string; timestamp?: number; secret?: string } = {}): Record<string, string> {
  const id = opts.id ?? 'wh_hostile';
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = createHmac('sha256', opts.secret ?? WEBHOOK_SECRET).update(`${id}.${timestamp}.`).update(raw).digest('hex');
  return {
    'content-type': 'application/json',
    'x-toapis-webhook-id': id,
    'x-toapis-webhook-timestamp': timestamp,
    'x-toapis-webhook-signature': `v1=${signature}`,
  };
}

type Bytes = Uint8Array<ArrayBuffer>;
const utf8 = (s: string): Bytes => new Uint8Array(Buffer.from(s, 'utf8'));
const concat = (...parts: Uint8Array[]): Bytes => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
};
function utf16(text: string, endian: 'le' | 'be', bom: boolean): Bytes {
  const le = Buffer.from(text, 'utf16le');
  const bytes = endian === 'le' ? le : Buffer.from(le).swap16();
  const mark = endian === 'le' ? [0xff, 0xfe] : [0xfe, 0xff];
  return new Uint8Array(bom ? Buffer.concat([Buffer.from(mark), bytes]) : bytes);
}

/** `[[[…]]]` or `{"a":{"a":…}}`, `levels` deep, optionally as a field of an otherwise valid document. */
function nested(levels: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(levels) + ']'.repeat(levels) : '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);
}

function isJsonObjectText(bytes: Uint8Array): boolean {
  try {
    const v: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries.

/** Strings with the characters that break naive code: NUL, lone surrogates, BOM, RTL override, quotes, escapes, %. */
const nastyChar = fc.constantFrom('\u0000', '\ud800', '\udfff', '\ufeff', '\ufffe', '\u202e', '"', '\\', '%', '%00', '%ZZ', '\n', '\r\n', '/', '..', '?', '#', '&', '=', '[', ']', '\u{1F600}');
/** A property name no sane schema has. */
const nastyKey = 'x\u0000\ud800';
const nastyString = fc.array(fc.oneof(fc.string({ unit: 'binary', maxLength: 8 }), nastyChar), { maxLength: 12 }).map((parts) => parts.join(''));

const bytesNotAJsonObject = fc.uint8Array({ maxLength: 4096 }).filter((b) => !isJsonObjectText(b));

/** Bodies that are not a JSON object, each a different way. */
const malformedBody: fc.Arbitrary<{ label: string; bytes: Bytes }> = fc.oneof(
  bytesNotAJsonObject.map((bytes) => ({ label: 'random bytes', bytes })),
  fc.string({ maxLength: 300 }).filter((s) => !isJsonObjectText(utf8(s))).map((s) => ({ label: 'random text', bytes: utf8(s) })),
  fc.nat().map((n) => {
    const text = JSON.stringify(aivideoapiCompleted('t'));
    return { label: 'truncated JSON', bytes: utf8(text.slice(0, n % text.length)) };
  }),
  fc
    .jsonValue()
    .filter((v) => v === null || typeof v !== 'object' || Array.isArray(v))
    .map((v) => ({ label: 'JSON but not an object', bytes: utf8(JSON.stringify(v)) })),
  fc.tuple(fc.integer({ min: 65, max: 10_000 }), fc.constantFrom('array' as const, 'object' as const), fc.boolean()).map(([levels, kind, wrapped]) => ({
    label: `nested ${levels} deep`,
    bytes: utf8(wrapped ? JSON.stringify(aivideoapiCompleted('t')).replace(/}$/, `,"x":${nested(levels, kind)}}`) : nested(levels, kind)),
  })),
  fc.tuple(fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xc0, 0xaf]), fc.nat()).map(([bad, n]) => {
    // Invalid UTF-8 inside a string value of an otherwise valid callback.
    const text = JSON.stringify({ ...aivideoapiCompleted('t'), note: 'ab' });
    const at = text.indexOf('"ab"') + 1 + (n % 2);
    return { label: 'invalid UTF-8', bytes: concat(utf8(text.slice(0, at)), new Uint8Array(bad), utf8(text.slice(at))) };
  }),
  fc.tuple(fc.constantFrom('le' as const, 'be' as const), fc.boolean()).map(([endian, bom]) => ({
    label: `UTF-16${endian.toUpperCase()}${bom ? ' with BOM' : ''}`,
    bytes: utf16(JSON.stringify(aivideoapiCompleted('t')), endian, bom),
  })),
  fc.constantFrom('', ' ', '\ufeff', 'null', '{', '}', '{"id":', '{"id":"t",}', "{'id':'t'}", '{"id":"t"}{"id":"t"}', '{"id":NaN}', '{"id":1e999999}', '\u0000{}').map((s) => ({
    label: `text ${JSON.stringify(s)}`,
    bytes: utf8(s),
  })),
);

// ---------------------------------------------------------------------------------------------

describe(`hostile input on the callback routes (${dbKind})`, () => {
  it('a body that is not a JSON object is refused with 400 on a valid URL, and nothing is stored', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(malformedBody, fc.constantFrom('job' as const, 'provider' as const), fc.constantFrom('veo' as const, 'trusting' as const), async ({ bytes }, route, provider) => {
        const url = route === 'job' ? jobUrl(provider, target[provider].id) : providerUrl(provider);
        await refusedAndNothingStored(() => post(url, bytes), [400]);
      }),
      runs(RUNS * 2),
    );
  });

  it('a body over 1 MiB is refused with 413 (declared or not, and whatever it declares), and nothing is stored', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 * 1024 }),
        fc.constantFrom('none', 'true', 'lie-small', 'lie-huge'),
        fc.constantFrom('string', 'bytes'),
        async (over, declared, kind) => {
          const size = MAX_CALLBACK_BYTES + over;
          // A valid callback with one huge string, or plain bytes.
          const body =
            kind === 'string'
              ? utf8(JSON.stringify({ ...aivideoapiCompleted(target.trusting.taskId), pad: '' }).replace('"pad":""', `"pad":"${'x'.repeat(size)}"`))
              : new Uint8Array(size).fill(0x20);
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (declared === 'true') headers['content-length'] = String(body.byteLength);
          if (declared === 'lie-small') headers['content-length'] = '10';
          if (declared === 'lie-huge') headers['content-length'] = String(10 * MAX_CALLBACK_BYTES);
          await refusedAndNothingStored(() => post(jobUrl('trusting', target.trusting.id), body, headers), [413]);
        },
      ),
      runs(12),
    );
  });

  it('a huge string within the 1 MiB limit is taken like any callback: stored and applied, no 5xx', async () => {
    const res = await post(jobUrl('trusting', target.trusting.id), JSON.stringify({ ...aivideoapiCompleted(target.trusting.taskId), progress: 10, status: 'processing', pad: 'é'.repeat(400_000) }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, job_id: target.trusting.id, status: 'processing' });
  });

  it('a body that is not declared JSON is refused with 415 before it is read', { timeout: 60_000 }, async () => {
    const types = fc.oneof(
      fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/json', 'application/jsonp', 'application/json-patch', 'application/xml', 'json', '*/*', ';', 'application/', 'image/png'),
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }).filter((t) => {
        const type = t.split(';', 1)[0]!.trim().toLowerCase();
        return type !== '' && type !== 'application/json' && !(type.startsWith('application/') && type.endsWith('+json'));
      }),
    );
    await fc.assert(
      fc.asyncProperty(types, async (type) => {
        await refusedAndNothingStored(() => post(jobUrl('trusting', target.trusting.id), JSON.stringify(aivideoapiCompleted(target.trusting.taskId)), { 'content-type': type }), [415]);
      }),
      runs(RUNS),
    );
  });

  it('a forged, mangled or borrowed token is refused with 401 (an unknown provider with 404), and nothing is stored', { timeout: 60_000 }, async () => {
    const goodJob = jobCallbackToken(SECRET, 'trusting', target.trusting.id);
    const goodProvider = providerCallbackToken(SECRET, 'trusting');
    const forgedToken = fc.oneof(
      fc.string({ maxLength: 64 }),
      fc.base64String({ minLength: 32, maxLength: 32 }),
      // One character off.
      fc.tuple(fc.nat({ max: goodJob.length - 1 }), fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_')).map(
        ([i, ch]) => goodJob.slice(0, i) + (goodJob[i] === ch ? (ch === 'a' ? 'b' : 'a') : ch) + goodJob.slice(i + 1),
      ),
      fc.constantFrom(
        goodProvider, // the provider-wide token on a job's URL
        jobCallbackToken(SECRET, 'trusting', target.veo.id), // another job's token
        jobCallbackToken(SECRET, 'veo', target.trusting.id), // another provider's token for this job
        jobCallbackToken('another-server-secret-0123456789', 'trusting', target.trusting.id),
        goodJob.toUpperCase(),
        `${goodJob}=`,
        ` ${goodJob}`,
      ),
    );
    const body = JSON.stringify(aivideoapiCompleted(target.trusting.taskId));
    await fc.assert(
      fc.asyncProperty(forgedToken, fc.constantFrom('job', 'provider'), async (token, route) => {
        fc.pre(token !== goodJob && token !== goodProvider);
        const path = route === 'job' ? `/callbacks/trusting/${target.trusting.id}/${encodeURIComponent(token)}` : `/callbacks/trusting/${encodeURIComponent(token)}`;
        // A token that holds a "/" reaches another route shape; still refused.
        await refusedAndNothingStored(() => post(path, body), [401, 404]);
      }),
      runs(RUNS * 2),
    );
    // The one answer that is not 401: no such callback route.
    for (const path of [
      `/callbacks/nope/${target.trusting.id}/${goodJob}`,
      `/callbacks/polled/${providerCallbackToken(SECRET, 'polled')}`,
      `/callbacks/${'x'.repeat(5000)}/${goodProvider}`,
      `/callbacks/trusting/job_doesnotexist/${jobCallbackToken(SECRET, 'trusting', 'job_doesnotexist')}`,
    ]) {
      await refusedAndNothingStored(() => post(path, body), [404]);
    }
  });

  it('odd path segments and percent-encodings are refused in the error shape, never a 5xx', { timeout: 60_000 }, async () => {
    const segment = fc.oneof(nastyString, fc.constantFrom('%', '%Z', '%ZZ', '%C3%28', '%ED%A0%80', '%00', '%2F', '..', '.', '%2e%2e', '%FF%FE'));
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 4 }), async (segments) => {
        // Raw (not re-encoded) apart from what cannot be in a URL at all.
        const path = '/callbacks/' + segments.map((s) => s.replace(/[\s#?/\u0000-\u001f]/g, (c) => encodeURIComponent(c))).join('/');
        await refusedAndNothingStored(() => post(path, JSON.stringify(aivideoapiCompleted(target.trusting.taskId))));
      }),
      runs(RUNS),
    );
  });

  it('a JSON object of any shape on a valid URL is never a 5xx, and when refused changes nothing', { timeout: 60_000 }, async () => {
    // Objects near a real callback (the provider's fields, wrong types, hostile strings) and plain random ones.
    const status = fc.oneof(fc.constantFrom('pending', 'processing', 'completed', 'failed', 'unknown', ''), nastyString, fc.jsonValue());
    const nearCallback = fc.record(
      {
        id: fc.oneof(fc.constant(target.trusting.taskId), nastyString, fc.jsonValue()),
        status,
        progress: fc.oneof(fc.integer(), fc.double(), nastyString, fc.jsonValue()),
        output: fc.oneof(fc.record({ urls: fc.array(fc.oneof(nastyString, fc.webUrl(), fc.jsonValue()), { maxLength: 3 }) }), fc.jsonValue()),
        error: fc.oneof(fc.record({ code: nastyString, message: nastyString }), fc.jsonValue()),
        [nastyKey]: fc.oneof(nastyString, fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const anyObject = fc.dictionary(nastyString, fc.jsonValue({ maxDepth: 4 }), { maxKeys: 6 });
    const headers = fc.record(
      { 'x-event': fc.oneof(fc.constantFrom('task.completed', 'task.failed', 'task.processing'), fc.string({ unit: 'grapheme-ascii', maxLength: 20 })), 'x-task-id': fc.string({ unit: 'grapheme-ascii', maxLength: 40 }) },
      { requiredKeys: [] },
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(nearCallback, anyObject), headers, fc.constantFrom('job', 'provider'), async (doc, extra, route) => {
        // A job of its own for each run: an accepted callback may rightly move it.
        const taskId = `hostile-any-${n++}`;
        const tracked = await relay.api('POST', '/v1/jobs/track', { provider: 'trusting', provider_task_id: taskId });
        const job = (await tracked.json()) as { id: string };
        const body = JSON.stringify('id' in doc && doc.id === target.trusting.taskId ? { ...doc, id: taskId } : doc);
        const url = route === 'job' ? jobUrl('trusting', job.id) : providerUrl('trusting');
        const cleanHeaders = Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, v.replace(/[^\x20-\x7e]/g, '')]));
        const before = await snapshot();
        const res = await post(url, body, { 'content-type': 'application/json', ...cleanHeaders });
        await expectNoServerError(res);
        if (res.status >= 400) expect(await snapshot()).toEqual(before);
        else expect(((await res.json()) as { job_id: string }).job_id).toBe(job.id);
      }),
      runs(RUNS),
    );
  });
});

describe(`forged and replayed signatures on a signed provider (${dbKind})`, () => {
  const url = () => jobUrl('signed', target.signed.id);
  const valid = () => JSON.stringify(toapisCompleted(target.signed.taskId));

  it('a signature that does not match the bytes, id, timestamp and secret is refused with 401, and nothing is stored', { timeout: 60_000 }, async () => {
    const now = Math.floor(Date.now() / 1000);
    const tamper = fc.oneof(
      // The body changed after signing: one byte, or whitespace only.
      fc.nat().map((i) => (h: Record<string, string>, raw: string) => {
        const at = i % raw.length;
        const ch = raw[at] === 'x' ? 'y' : 'x';
        return { headers: h, body: raw.slice(0, at) + ch + raw.slice(at + 1) };
      }),
      fc.constant((h: Record<string, string>, raw: string) => ({ headers: h, body: raw.replace('{', '{ ') })),
      // Another webhook id or timestamp than the one signed.
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 30 }).map((id) => (h: Record<string, string>, raw: string) => ({ headers: { ...h, 'x-toapis-webhook-id': id === 'wh_hostile' ? 'wh_other' : id }, body: raw })),
      fc.integer({ min: 1, max: 10_000 }).map((d) => (h: Record<string, string>, raw: string) => ({ headers: { ...h, 'x-toapis-webhook-timestamp': String(now - d) }, body: raw })),
      // Signed with another secret, replayed from long ago or from the future, or with no or a malformed signature.
      fc.constant((_h: Record<string, string>, raw: string) => ({ headers: toapisHeaders(raw, { secret: 'not-the-secret' }), body: raw })),
      fc.integer({ min: 301, max: 10 ** 8 }).map((age) => (_h: Record<string, string>, raw: string) => ({ headers: toapisHeaders(raw, { timestamp: now - age }), body: raw })),
      fc.integer({ min: 301, max: 10 ** 6 }).map((ahead) => (_h: Record<string, string>, raw: string) => ({ headers: toapisHeaders(raw, { timestamp: now + ahead }), body: raw })),
      fc
        .oneof(
          fc.constantFrom('', 'v1=', 'v1', 'v2=' + 'a'.repeat(64), 'v1=' + 'g'.repeat(64), 'v1=' + 'a'.repeat(63), 'v1=' + 'a'.repeat(64), ',,,', 'v1=,v1='),
          fc.string({ unit: 'grapheme-ascii', maxLength: 200 }),
          fc.array(fc.stringMatching(/^[0-9a-f]{64}$/), { minLength: 1, maxLength: 5 }).map((sigs) => sigs.map((s) => `v1=${s}`).join(',')),
        )
        .map((sig) => (h: Record<string, string>, raw: string) => ({ headers: { ...h, 'x-toapis-webhook-signature': sig }, body: raw })),
      fc.constantFrom('x-toapis-webhook-id', 'x-toapis-webhook-timestamp', 'x-toapis-webhook-signature').map((name) => (h: Record<string, string>, raw: string) => {
        const { [name]: _dropped, ...rest } = h;
        return { headers: rest, body: raw };
      }),
      fc.string({ unit: 'grapheme-ascii', maxLength: 20 }).map((ts) => (h: Record<string, string>, raw: string) => ({ headers: { ...h, 'x-toapis-webhook-timestamp': ts }, body: raw })),
    );
    await fc.assert(
      fc.asyncProperty(tamper, fc.constantFrom('job', 'provider'), async (change, route) => {
        const raw = valid();
        const signed = toapisHeaders(raw);
        const { headers, body } = change(signed, raw);
        // A change that happens to leave the request exactly as signed is not a forgery.
        fc.pre(!(body === raw && JSON.stringify(headers) === JSON.stringify(signed)));
        await refusedAndNothingStored(() => post(route === 'job' ? url() : providerUrl('signed'), body, headers), [400, 401]);
      }),
      runs(RUNS * 2),
    );
  });

  it('a replay of a correctly signed callback is a duplicate: 200, stored as such, and no second event', async () => {
    const raw = valid();
    const headers = toapisHeaders(raw, { id: 'wh_replayed' });
    const first = await post(url(), raw, headers);
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ verdict: 'applied', status: 'succeeded' });
    const before = await snapshot();
    for (let i = 0; i < 3; i++) {
      const again = await post(i % 2 ? providerUrl('signed') : url(), raw, headers);
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ verdict: 'duplicate', status: 'succeeded' });
    }
    const after = await snapshot();
    expect(after.jobs).toEqual(before.jobs);
    expect(after.events).toBe(before.events);
    expect(after.acceptedReceipts).toBe(before.acceptedReceipts + 3);
  });
});

// ---------------------------------------------------------------------------------------------
// Strings PostgreSQL cannot hold: U+0000 (text and jsonb refuse it) and unpaired UTF-16 surrogates
// (valid JSON escapes, refused by jsonb). Each must be refused (or kept some safe way), never a 5xx.

const unstorable = [
  ['NUL', '\\u0000'],
  ['a lone high surrogate', '\\ud800'],
  ['a lone low surrogate', '\\udc00'],
] as const;

describe(`strings PostgreSQL cannot store: U+0000 and lone surrogates (${dbKind})`, () => {
  const apiCases = unstorable.flatMap(([name, esc]) => [
    [`POST /v1/jobs/track, provider_task_id with ${name}`, '/v1/jobs/track', `{"provider":"veo","provider_task_id":"t-${name}-${esc}"}`],
    [`POST /v1/jobs/track, model with ${name}`, '/v1/jobs/track', `{"provider":"veo","provider_task_id":"m-${name}","model":"a${esc}"}`],
    [`POST /v1/jobs/track, a metadata value with ${name}`, '/v1/jobs/track', `{"provider":"veo","provider_task_id":"v-${name}","metadata":{"k":"a${esc}"}}`],
    [`POST /v1/jobs/track, a metadata key with ${name}`, '/v1/jobs/track', `{"provider":"veo","provider_task_id":"k-${name}","metadata":{"a${esc}":"v"}}`],
    [`POST /v1/jobs, prompt with ${name}`, '/v1/jobs', `{"provider":"veo","model":"veo-3","prompt":"a${esc}b"}`],
    [`POST /v1/jobs, a metadata value with ${name}`, '/v1/jobs', `{"provider":"veo","model":"veo-3","prompt":"p","metadata":{"k":"a${esc}"}}`],
    [`POST /v1/jobs, provider_options with ${name}`, '/v1/jobs', `{"provider":"veo","model":"veo-3","prompt":"p","provider_options":{"x":"a${esc}"}}`],
    [`POST /v1/subscriptions, description with ${name}`, '/v1/subscriptions', `{"url":"https://x.example/h","description":"a${esc}"}`],
    [`POST /v1/subscriptions, a metadata key with ${name}`, '/v1/subscriptions', `{"url":"https://x.example/h","metadata":{"a${esc}":"b"}}`],
    [`POST /v1/subscriptions, url with ${name}`, '/v1/subscriptions', `{"url":"https://x.example/h${esc}"}`],
  ]) as [string, string, string][];

  /** The cases answered with a 5xx, or refused with something stored: what the assertions below show when they fail. */
  async function offenders<T>(cases: readonly T[], label: (c: T) => string, run: (c: T) => Promise<{ res: Response; stored: () => Promise<boolean> }>): Promise<string[]> {
    const bad: string[] = [];
    for (const c of cases) {
      const { res, stored } = await run(c);
      const text = await res.clone().text();
      if (res.status >= 500) bad.push(`${label(c)} → ${res.status} ${text.slice(0, 120)}`);
      else if (res.status >= 400) {
        await expectRefused(res);
        if (await stored()) bad.push(`${label(c)} → ${res.status}, but something was stored`);
      }
    }
    return bad;
  }
  const changedSince = (before: Snapshot) => async () => JSON.stringify(await snapshot()) !== JSON.stringify(before);

  it('on the API writes: never a 5xx, and nothing stored when refused', async () => {
    const bad = await offenders(apiCases, ([label]) => label, async ([, route, body]) => {
      const before = await snapshot();
      return { res: await apiPost(route, body), stored: changedSince(before) };
    });
    expect(bad).toEqual([]);
  });

  it('in API paths and query strings (%00): a 200, 400 or 404 in the error shape, never a 5xx', async () => {
    const paths = [
      '/v1/jobs?provider=%00',
      '/v1/jobs?metadata[a]=%00',
      '/v1/jobs?metadata[%00]=x',
      '/v1/jobs/%00',
      '/v1/jobs/%00/events',
      '/v1/jobs/%00/callbacks',
      '/v1/deliveries?job_id=%00',
      '/v1/deliveries?subscription_id=%00',
      '/v1/subscriptions?cursor=%00',
      '/v1/subscriptions/%00',
    ];
    const bad = await offenders(paths, (p) => `GET ${p}`, async (p) => ({ res: await apiGet(p), stored: async () => false }));
    expect(bad).toEqual([]);
  });

  const callbackCases = unstorable.flatMap(([name, esc]) => [
    [`the task id (provider-wide URL) with ${name}`, 'provider', (taskId: string) => `{"id":"${taskId}${esc}","status":"completed","output":{"urls":["https://x.example/v.mp4"]}}`],
    [`a video URL with ${name}`, 'job', (taskId: string) => `{"id":"${taskId}","status":"completed","output":{"urls":["https://x.example/${esc}.mp4"]}}`],
    [`a property name with ${name}`, 'job', (taskId: string) => `{"id":"${taskId}","status":"completed","output":{"urls":["https://x.example/v.mp4"]},"a${esc}":1}`],
    [`an error message with ${name}`, 'job', (taskId: string) => `{"id":"${taskId}","status":"failed","error":{"code":"x","message":"a${esc}"}}`],
  ]) as [string, 'job' | 'provider', (taskId: string) => string][];

  it('in a callback: never a 5xx (a provider would retry it for ever), and nothing stored when refused', async () => {
    let n = 0;
    const bad = await offenders(callbackCases, ([label]) => `a callback with ${label}`, async ([, route, body]) => {
      const taskId = `unstorable-${n++}`;
      const job = (await (await relay.api('POST', '/v1/jobs/track', { provider: 'trusting', provider_task_id: taskId })).json()) as { id: string };
      const before = await snapshot();
      return { res: await post(route === 'job' ? jobUrl('trusting', job.id) : providerUrl('trusting'), body(taskId)), stored: changedSince(before) };
    });
    expect(bad).toEqual([]);
  });
});

describe(`hostile input on the API (${dbKind})`, () => {
  const writeRoutes = ['/v1/jobs', '/v1/jobs/track', '/v1/subscriptions'] as const;

  it('a body that is not a JSON object, or is over 256 KiB, is refused with 400 or 413, and nothing is stored', { timeout: 60_000 }, async () => {
    const body = fc.oneof(
      malformedBody.map(({ bytes }) => bytes),
      fc.integer({ min: 1, max: 4096 }).map((over) => utf8(JSON.stringify({ provider: 'veo', prompt: 'x'.repeat(API_LIMIT + over) }))),
      // Deep nesting inside an otherwise valid request, within the size limit.
      fc.tuple(fc.integer({ min: 100, max: 20_000 }), fc.constantFrom('array' as const, 'object' as const)).map(([levels, kind]) =>
        utf8(`{"provider":"veo","provider_task_id":"deep","prompt":"p","url":"https://x.example/h","metadata":${nested(levels, kind)}}`),
      ),
    );
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom(...writeRoutes), async (bytes, route) => {
        await refusedAndNothingStored(() => apiPost(route, bytes), [400, 413]);
      }),
      runs(RUNS * 2),
    );
  });

  it('deeply nested provider_options or metadata within 256 KiB: a 4xx or taken, never a 5xx', async () => {
    const bad: string[] = [];
    for (const levels of [64, 1000, 4000, 10_000, 40_000]) {
      for (const kind of ['array', 'object'] as const) {
        for (const field of ['provider_options', 'metadata'] as const) {
          const body = `{"provider":"veo","model":"veo-3","prompt":"p","${field}":{"x":${nested(levels, kind)}}}`;
          if (body.length > API_LIMIT) continue;
          const before = await snapshot();
          const res = await apiPost('/v1/jobs', body);
          if (res.status >= 500) bad.push(`${field} ${levels} deep (${kind}s) → ${res.status} ${(await res.text()).slice(0, 100)}`);
          else if (res.status >= 400) {
            await expectRefused(res);
            expect(await snapshot()).toEqual(before);
          }
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('any JSON value of the wrong shape or type is refused with 400 and stores nothing; near-valid requests with hostile strings are never a 5xx', { timeout: 60_000 }, async () => {
    const anyJson = fc.jsonValue({ maxDepth: 5 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length === 0 || !('provider' in v || 'url' in v));
    await fc.assert(
      fc.asyncProperty(anyJson, fc.constantFrom(...writeRoutes), async (value, route) => {
        await refusedAndNothingStored(() => apiPost(route, JSON.stringify(value)), [400]);
      }),
      runs(RUNS),
    );

    const str = fc.oneof(nastyString, fc.string({ maxLength: 30 }), fc.constantFrom('veo', 'trusting', 'signed', 'polled'));
    const metadata = fc.oneof(fc.dictionary(str, fc.oneof(str, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 4 }), fc.jsonValue({ maxDepth: 2 }));
    const trackBody = fc.record(
      {
        provider: fc.oneof(fc.constantFrom('veo', 'trusting', 'signed', 'polled'), str, fc.jsonValue({ maxDepth: 1 })),
        provider_task_id: fc.oneof(str, fc.jsonValue({ maxDepth: 1 })),
        model: fc.oneof(str, fc.jsonValue({ maxDepth: 1 })),
        metadata,
        notify_url: fc.oneof(str, fc.webUrl(), fc.jsonValue({ maxDepth: 1 })),
        [nastyKey]: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: ['provider', 'provider_task_id'] },
    );
    const jobBody = fc.record(
      {
        provider: fc.oneof(fc.constantFrom('veo', 'trusting', 'signed', 'polled'), str),
        model: fc.oneof(fc.constantFrom('veo-3', 'gemini_omni', 'veo-3-extend'), str, fc.jsonValue({ maxDepth: 1 })),
        prompt: fc.oneof(str, fc.jsonValue({ maxDepth: 1 })),
        images: fc.oneof(fc.array(fc.oneof(fc.webUrl(), str), { maxLength: 4 }), fc.jsonValue({ maxDepth: 2 })),
        duration: fc.oneof(fc.constantFrom(4, 6, 8, 10), fc.double(), str),
        aspect_ratio: fc.oneof(fc.constantFrom('16:9', '9:16', 'Auto'), str),
        resolution: fc.oneof(fc.constantFrom('720p', '1080p', '4k', '720P'), str),
        seed: fc.oneof(fc.integer(), fc.double(), str),
        audio: fc.oneof(fc.boolean(), str),
        provider_options: fc.oneof(fc.dictionary(str, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }), fc.jsonValue({ maxDepth: 2 })),
        metadata,
        notify_url: fc.oneof(str, fc.webUrl()),
      },
      { requiredKeys: ['provider'] },
    );
    const subscriptionBody = fc.record(
      {
        url: fc.oneof(fc.webUrl(), str, fc.constantFrom('http://127.0.0.1:1/h', 'file:///etc/passwd', 'http://[::1]/', 'http://169.254.169.254/latest', 'javascript:alert(1)')),
        event_types: fc.oneof(fc.array(fc.oneof(fc.constantFrom('job.succeeded', 'job.failed', 'job.submitted'), str), { maxLength: 4 }), fc.jsonValue({ maxDepth: 1 })),
        providers: fc.oneof(fc.array(str, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
        metadata,
        description: fc.oneof(str, fc.jsonValue({ maxDepth: 1 })),
      },
      { requiredKeys: ['url'] },
    );
    const request = fc.oneof(
      trackBody.map((b) => ['/v1/jobs/track', b] as const),
      jobBody.map((b) => ['/v1/jobs', b] as const),
      subscriptionBody.map((b) => ['/v1/subscriptions', b] as const),
    );
    await fc.assert(
      fc.asyncProperty(request, async ([route, body]) => {
        const before = await snapshot();
        const res = await apiPost(route, JSON.stringify(body));
        await expectNoServerError(res);
        if (res.status >= 400) expect(await snapshot()).toEqual(before);
      }),
      runs(RUNS * 3),
    );
  });

  it('odd query strings on the list routes are a 200 or a 400 in the error shape, never a 5xx', { timeout: 60_000 }, async () => {
    const key = fc.oneof(
      fc.constantFrom('status', 'provider', 'created_after', 'created_before', 'limit', 'cursor', 'metadata[order_id]', 'metadata[]', 'metadata', 'metadata[a][b]', 'after', 'subscription_id', 'job_id', '__proto__', 'constructor', 'metadata[__proto__]'),
      nastyString,
    );
    const value = fc.oneof(
      fc.constantFrom('', 'succeeded', 'succeeded,failed', 'nope', '-1', '0', '201', '1e3', '1e309', 'NaN', '0x10', '2026-13-45T99:99:99Z', '2026-01-01T00:00:00Z', 'null', '[]', '{}', '%', '%ZZ', '%00', '%C3%28', 'eyJ9', 'a'.repeat(5000)),
      nastyString,
      fc.base64String({ maxLength: 80 }),
    );
    // encodeURIComponent throws on a lone surrogate; in a URL it can only travel as U+FFFD anyway.
    const encode = (v: string) => encodeURIComponent(Buffer.from(v, 'utf8').toString('utf8'));
    const query = fc.array(fc.tuple(key, value, fc.boolean()), { maxLength: 5 }).map((pairs) =>
      // Raw (so malformed %-escapes reach the relay) or properly encoded.
      pairs.map(([k, v, raw]) => (raw ? `${k.replace(/[\s#&=\u0000-\u001f]/g, '')}=${v.replace(/[\s#&\u0000-\u001f]/g, '')}` : `${encode(k)}=${encode(v)}`)).join('&'),
    );
    const routes = ['/v1/jobs', '/v1/events', '/v1/deliveries', '/v1/subscriptions', '/v1/jobs/JOB/events', '/v1/jobs/JOB/callbacks'];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), query, async (route, q) => {
        const before = await snapshot();
        let res: Response;
        try {
          res = await apiGet(`${route.replace('JOB', target.veo.id)}?${q}`);
        } catch (err) {
          // A query no URL parser accepts never reaches a server either.
          if (err instanceof TypeError && /Invalid URL/.test(String(err))) return;
          throw err;
        }
        expect([200, 400], `${route}?${q}: ${await res.clone().text().then((t) => t.slice(0, 300))}`).toContain(res.status);
        if (res.status === 400) await expectRefused(res);
        expect(await snapshot()).toEqual(before);
      }),
      runs(RUNS * 2),
    );
  });
});
