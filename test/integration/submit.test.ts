import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { jobCallbackToken } from '../../src/callbacks/tokens.js';
import { type Emulator, signToapis, startEmulator } from '../../src/emulators/index.js';
import { SECRET } from '../helpers/relay.js';
import { createScratchDatabase, dbKind } from '../helpers/db.js';
import { type RealRelay, startRealRelay } from '../helpers/real-relay.js';

const TOAPIS_SECRET = 'toapis-webhook-secret';
let av: Emulator;
let ta: Emulator;
let vg: Emulator;
let ov: Emulator;
let relay: RealRelay;

const isTerminal = (j: { status: string }) => ['succeeded', 'failed', 'canceled', 'expired'].includes(j.status);

beforeAll(async () => {
  [av, ta, vg, ov] = await Promise.all([
    startEmulator('aivideoapi', { durationMs: 150 }),
    startEmulator('toapis', { durationMs: 150, webhookSecret: TOAPIS_SECRET }),
    startEmulator('video-generations', { durationMs: 150 }),
    startEmulator('openai-videos', { durationMs: 150 }),
  ]);
  const p = (e: Emulator, extra: Record<string, unknown> = {}) => ({ kind: e.kind, base_url: e.baseUrl, api_key: e.apiKey, timeout_s: 2, ...extra });
  relay = await startRealRelay({
    av: p(av),
    // The same emulator, believing callbacks without asking back (so one can land before the submit answer).
    avtrusting: p(av, { verify_by_fetch: false }),
    ta: p(ta, { webhook_secret: TOAPIS_SECRET }),
    vg: p(vg),
    ov: p(ov),
  });
});
afterAll(async () => {
  await relay?.close();
  await Promise.all([av, ta, vg, ov].map((e) => e?.close()));
});
beforeEach(() => {
  for (const e of [av, ta, vg, ov]) {
    e.behaviour.failNext = null;
    e.behaviour.stallSubmit = false;
    e.behaviour.callbacks = 'normal';
    e.behaviour.latencyMs = 0;
  }
});

async function submit(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await relay.api('POST', '/v1/jobs', body, headers);
  const json = (await res.json()) as any;
  expect(res.status, JSON.stringify(json)).toBe(202);
  return json;
}

async function refreshUntilTerminal(id: string) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await relay.api('POST', `/v1/jobs/${id}/refresh`);
    if (res.status === 200) {
      const job = (await res.json()) as any;
      if (isTerminal(job)) return job;
    }
    if (Date.now() > deadline) throw new Error(`job ${id} not terminal via refresh`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function eventTypes(id: string) {
  return ((await (await relay.api('GET', `/v1/jobs/${id}/events`)).json()) as { data: { type: string }[] }).data.map((e) => e.type);
}

describe(`submission through each provider kind (${dbKind})`, () => {
  it('aivideoapi: submitted with its per-job callback URL, finished by a confirmed callback', async () => {
    const job = await submit({ provider: 'av', prompt: 'A drone shot over mountains', resolution: '720p', metadata: { order_id: 'A-17' } });
    expect(job.status).toBe('queued');
    const done = await relay.waitFor(job.id, isTerminal);
    expect(done).toMatchObject({ status: 'succeeded', metadata: { order_id: 'A-17' } });
    expect(done.result.video_urls).toHaveLength(1);
    const task = av.tasks.get(done.provider_task_id)!;
    expect(task.callbackUrl).toMatch(new RegExp(`^${relay.url}/callbacks/av/${job.id}/[\\w-]{32}$`));
    expect(task.submitBody).toMatchObject({ model: 'veo-3', input: { prompt: 'A drone shot over mountains', resolution: '720p' } });
    expect(await eventTypes(job.id)).toEqual(['job.submitted', 'job.succeeded']);
  });

  it('aivideoapi: a failed generation carries the provider error', async () => {
    const job = await submit({ provider: 'av', prompt: 'please FAIL' });
    const done = await relay.waitFor(job.id, isTerminal);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ source: 'provider' });
  });

  it('toapis: a signed callback finishes the job', async () => {
    const job = await submit({ provider: 'ta', prompt: 'A cat', duration: 10 });
    const done = await relay.waitFor(job.id, isTerminal);
    expect(done.status).toBe('succeeded');
    expect(done.result.video_urls[0]).toMatch(/^https?:\/\//);
    const receipts = ((await (await relay.api('GET', `/v1/jobs/${job.id}/callbacks`)).json()) as { data: any[] }).data;
    expect(receipts.map((r) => r.verdict)).toEqual(['applied']);
    expect(receipts[0].headers['x-toapis-webhook-signature']).toMatch(/^v1=/);
  });

  it('toapis: a callback with a bad signature is refused with 401 even on the right URL', async () => {
    ta.behaviour.callbacks = 'none';
    const job = await submit({ provider: 'ta', prompt: 'forged' });
    const submitted = await relay.waitFor(job.id, (j) => j.status !== 'queued');
    const url = `${relay.url}/callbacks/ta/${job.id}/${jobCallbackToken(SECRET, 'ta', job.id)}`;
    const body = JSON.stringify({
      id: 'wh_forged',
      type: 'generation.completed',
      created_at: 1,
      data: { task_id: submitted.provider_task_id, status: 'completed', result: { type: 'video', data: [{ url: 'https://evil.example/v.mp4' }] } },
    });
    const post = (secret: string, ts: number) =>
      fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-toapis-webhook-id': 'wh_forged',
          'x-toapis-webhook-timestamp': String(ts),
          'x-toapis-webhook-signature': `v1=${signToapis(secret, 'wh_forged', ts, body)}`,
        },
        body,
      });
    const now = Math.floor(Date.now() / 1000);
    expect((await post('not-the-secret', now)).status).toBe(401);
    expect((await post(TOAPIS_SECRET, now - 600)).status).toBe(401);
    expect(((await (await relay.api('GET', `/v1/jobs/${job.id}`)).json()) as any).status).toBe('submitted');
    expect((await post(TOAPIS_SECRET, now)).status).toBe(200);
    expect(((await (await relay.api('GET', `/v1/jobs/${job.id}`)).json()) as any).status).toBe('succeeded');
  });

  it('toapis: a duplicate callback (same webhook id) is stored but emits no second event', async () => {
    ta.behaviour.callbacks = 'duplicate';
    const job = await submit({ provider: 'ta', prompt: 'twice' });
    await relay.waitFor(job.id, isTerminal);
    await waitUntil(async () => (await receiptVerdicts(job.id)).length === 2);
    expect(await receiptVerdicts(job.id)).toEqual(['applied', 'duplicate']);
    expect((await eventTypes(job.id)).filter((t) => t === 'job.succeeded')).toHaveLength(1);
  });

  it('aivideoapi: an out-of-order processing callback after completion changes nothing', async () => {
    av.behaviour.callbacks = 'out-of-order';
    const job = await submit({ provider: 'av', prompt: 'late' });
    await relay.waitFor(job.id, isTerminal);
    await waitUntil(async () => (await receiptVerdicts(job.id)).length === 2);
    expect(await receiptVerdicts(job.id)).toEqual(['applied', 'stale']);
    expect((await (await relay.api('GET', `/v1/jobs/${job.id}`)).json()) as any).toMatchObject({ status: 'succeeded' });
  });

  it('video-generations: poll-only, reaches its end through refresh', async () => {
    const job = await submit({ provider: 'vg', model: 'veo3.1-fast-video-720p', prompt: 'A street interview', duration: 8 });
    const submitted = await relay.waitFor(job.id, (j) => j.status !== 'queued');
    expect(submitted.provider_task_id).toBeTruthy();
    expect(vg.tasks.get(submitted.provider_task_id)!.callbackUrl).toBeNull();
    const done = await refreshUntilTerminal(job.id);
    expect(done.status).toBe('succeeded');
    expect(done.result.video_urls[0]).toMatch(/^https?:\/\//);
  });

  it('openai-videos: poll-only; the video is served by the relay with the provider key, ranges included', async () => {
    const job = await submit({ provider: 'ov', model: 'veo-3.1-fast-generate-preview', prompt: 'A cat chasing butterflies' });
    await relay.waitFor(job.id, (j) => j.status !== 'queued');
    const done = await refreshUntilTerminal(job.id);
    expect(done.status).toBe('succeeded');
    expect(done.result.video_urls).toEqual([`${relay.url}/v1/jobs/${job.id}/content`]);

    const whole = await relay.api('GET', `/v1/jobs/${job.id}/content`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-type')).toBe('video/mp4');
    const bytes = new Uint8Array(await whole.arrayBuffer());
    expect(bytes.length).toBe(64 * 1024);
    const part = await relay.api('GET', `/v1/jobs/${job.id}/content`, undefined, { range: 'bytes=10-19' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${bytes.length}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.subarray(10, 20));
    expect(JSON.stringify(done)).not.toContain(ov.apiKey);
  });

  it('refresh before the job reached the provider is a conflict', async () => {
    av.behaviour.latencyMs = 500;
    const job = await submit({ provider: 'av', prompt: 'slow' });
    const res = await relay.api('POST', `/v1/jobs/${job.id}/refresh`);
    expect(res.status).toBe(409);
    await relay.waitFor(job.id, isTerminal);
  });

  it('a callback that arrives before the submit answer is applied, and the late answer changes nothing', async () => {
    // The emulated task finishes (and calls back) 150 ms after the submit, well before its answer.
    av.behaviour.latencyMs = 800;
    const job = await submit({ provider: 'avtrusting', prompt: 'fast finish, slow answer' });
    const done = await relay.waitFor(job.id, isTerminal);
    expect(done.status).toBe('succeeded');
    await relay.waitFor(job.id, (j) => j.provider_task_id !== null);
    await new Promise((r) => setTimeout(r, 1200));
    expect(await eventTypes(job.id)).toEqual(['job.succeeded']);
  });
});

describe(`submission safety (${dbKind})`, () => {
  it('the same Idempotency-Key twice: one provider call, one job; reused with another body: 409', async () => {
    const before = av.submits();
    const body = { provider: 'av', prompt: 'only once' };
    const first = await submit(body, { 'idempotency-key': 'order-42' });
    const again = await relay.api('POST', '/v1/jobs', body, { 'idempotency-key': 'order-42' });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(((await again.json()) as any).id).toBe(first.id);
    await relay.waitFor(first.id, isTerminal);
    expect(av.submits() - before).toBe(1);
    const other = await relay.api('POST', '/v1/jobs', { ...body, prompt: 'something else' }, { 'idempotency-key': 'order-42' });
    expect(other.status).toBe(409);
  });

  it('a provider that accepts and then stalls past the timeout: submission_unknown, exactly one call', async () => {
    av.behaviour.stallSubmit = true;
    // Without a callback the relay cannot learn the outcome: all it knows is that it sent the request.
    av.behaviour.callbacks = 'none';
    const before = av.submits();
    const job = await submit({ provider: 'av', prompt: 'stall' });
    const done = await relay.waitFor(job.id, isTerminal, 10_000);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ code: 'submission_unknown', source: 'relay' });
    av.behaviour.stallSubmit = false;
    await new Promise((r) => setTimeout(r, 1500));
    expect(av.submits() - before).toBe(1);
  });

  it('429 with Retry-After three times, then accepted: one job, submitted once, the delays honoured', async () => {
    av.behaviour.failNext = { status: 429, count: 3, retryAfterS: 1, on: 'submit' };
    const before = av.submits();
    const started = Date.now();
    const job = await submit({ provider: 'av', prompt: 'storm' });
    const done = await relay.waitFor(job.id, (j) => j.status !== 'queued', 15_000);
    expect(done.status).not.toBe('failed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    const submitsSeen = av.requests.filter((r) => r.method === 'POST' && r.at >= started);
    expect(submitsSeen.map((r) => r.status)).toEqual([429, 429, 429, 200]);
    for (let i = 1; i < submitsSeen.length; i++) expect(submitsSeen[i]!.at - submitsSeen[i - 1]!.at).toBeGreaterThanOrEqual(950);
    expect(av.submits() - before).toBe(1);
  }, 20_000);

  it('a final 4xx fails the job with the provider code and message, without retrying', async () => {
    av.behaviour.failNext = { status: 402, count: 1, on: 'submit' };
    const before = av.requests.length;
    const job = await submit({ provider: 'av', prompt: 'broke' });
    const done = await relay.waitFor(job.id, isTerminal);
    expect(done.status).toBe('failed');
    expect(done.error.source).toBe('provider');
    expect(done.error.message).toBeTruthy();
    expect(av.requests.slice(before).filter((r) => r.method === 'POST')).toHaveLength(1);
  });

  it('a refused connection is retried and then goes through', async () => {
    vg.behaviour.refuseConnections = true;
    const job = await submit({ provider: 'vg', model: 'veo3.1-video-720p', prompt: 'refused first' });
    await new Promise((r) => setTimeout(r, 300));
    vg.behaviour.refuseConnections = false;
    const done = await relay.waitFor(job.id, (j) => j.status !== 'queued', 15_000);
    expect(done.status).not.toBe('failed');
  }, 20_000);
});

describe.skipIf(dbKind === 'pglite')('two relays over one Postgres', () => {
  it('200 queued jobs are each submitted exactly once', async () => {
    const e = await startEmulator('video-generations', { durationMs: 60_000 });
    const scratch = await createScratchDatabase();
    const providers = { vg: { kind: 'video-generations', base_url: e.baseUrl, api_key: e.apiKey, rate_limit: { submit_per_min: 60_000 } } };
    const a = await startRealRelay(providers, { databaseUrl: scratch.url });
    const b = await startRealRelay(providers, { databaseUrl: scratch.url });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 200; i++) {
        const target = i % 2 ? a : b;
        const res = await target.api('POST', '/v1/jobs', { provider: 'vg', model: 'veo3.1-video-720p', prompt: `job ${i}` });
        ids.push(((await res.json()) as any).id);
      }
      for (const id of ids) await a.waitFor(id, (j) => j.status !== 'queued', 30_000);
      expect(e.submits()).toBe(200);
      const prompts = [...e.tasks.values()].map((t) => t.submitBody.prompt);
      expect(new Set(prompts).size).toBe(200);
    } finally {
      await a.close();
      await b.close();
      await e.close();
      await scratch.drop();
    }
  }, 60_000);
});

async function receiptVerdicts(id: string): Promise<string[]> {
  return ((await (await relay.api('GET', `/v1/jobs/${id}/callbacks`)).json()) as { data: { verdict: string }[] }).data.map((r) => r.verdict);
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
