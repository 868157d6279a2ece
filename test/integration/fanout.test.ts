import { sql } from 'drizzle-orm';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryConfig } from '../../src/config.js';
import { executeRows } from '../../src/db/rows.js';
import { notifyUrlSecret } from '../../src/fanout/signing.js';
import { type DeliveryWorker, type DeliveryWorkerOptions, startDeliveryWorker } from '../../src/fanout/worker.js';
import type { Observation } from '../../src/jobs/states.js';
import { applyObservation } from '../../src/jobs/transition.js';
import { createLogger } from '../../src/ops/logger.js';
import { dbKind } from '../helpers/db.js';
import { SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';
import { type Sink, startSink } from '../helpers/sink.js';

const fastDelivery = (over: Partial<DeliveryConfig> = {}): DeliveryConfig => ({
  retry_schedule_s: [0, 0.05, 0.05],
  timeout_s: 1,
  allow_private_targets: true,
  disable_after_s: 3600,
  ...over,
});

function headersOf(req: { headers: Record<string, unknown> }) {
  return {
    'webhook-id': String(req.headers['webhook-id']),
    'webhook-timestamp': String(req.headers['webhook-timestamp']),
    'webhook-signature': String(req.headers['webhook-signature']),
  };
}

describe(`fan-out: subscriptions, signed deliveries, retries (${dbKind})`, () => {
  let relay: TestRelay;
  let sink: Sink;
  let worker: DeliveryWorker | null = null;
  let path = 0;
  /** A fresh sink path per use, so tests never see each other's requests. */
  const newPath = () => `/hook-${++path}`;

  beforeAll(async () => {
    relay = await startTestRelay({
      veo: { kind: 'aivideoapi', base_url: 'http://provider.test', api_key: 'k' },
      gen: { kind: 'video-generations', base_url: 'http://provider.test', api_key: 'k' },
    });
    sink = await startSink();
  });
  afterEach(async () => {
    await worker?.stop();
    worker = null;
    await relay.deps.db.execute(sql`delete from subscriptions`);
    await relay.deps.db.execute(sql`delete from deliveries`);
  });
  afterAll(async () => {
    await sink?.close();
    await relay?.close();
  });

  function startWorker(delivery: DeliveryConfig = fastDelivery(), over: Partial<DeliveryWorkerOptions> = {}) {
    worker = startDeliveryWorker({
      db: relay.deps.db,
      notifier: relay.deps.database.notifier,
      log: createLogger('silent'),
      delivery,
      notifySecret: notifyUrlSecret(SECRET),
      idleMs: Number(process.env.FANOUT_IDLE_MS ?? 200),
      ...over,
    });
    return worker;
  }

  async function subscribe(body: Record<string, unknown>) {
    const res = await relay.api('POST', '/v1/subscriptions', body);
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as { id: string; secret: string; [k: string]: unknown };
  }

  async function track(opts: { provider?: string; metadata?: Record<string, string>; notify_url?: string } = {}) {
    const res = await relay.api('POST', '/v1/jobs/track', {
      provider: opts.provider ?? 'veo',
      provider_task_id: `task-${Math.random().toString(36).slice(2)}`,
      ...(opts.metadata ? { metadata: opts.metadata } : {}),
      ...(opts.notify_url ? { notify_url: opts.notify_url } : {}),
    });
    expect(res.status, await res.clone().text()).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  async function move(jobId: string, status: Observation['status'] = 'succeeded') {
    await relay.deps.db.transaction((tx) =>
      applyObservation(tx, jobId, status === 'succeeded' ? { status, videoUrls: ['https://cdn.test/v.mp4'] } : { status }),
    );
  }

  async function deliveriesOf(query: string) {
    const res = await relay.api('GET', `/v1/deliveries?${query}`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { data: any[] }).data;
  }

  async function waitForDelivery(id: string, done: (d: any) => boolean, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    let d: any;
    while (Date.now() < deadline) {
      d = await (await relay.api('GET', `/v1/deliveries/${id}`)).json();
      if (done(d)) return d;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`delivery ${id} did not get there: ${JSON.stringify(d)}`);
  }

  it('a delivery carries the SPEC body and verifies with the standardwebhooks package', async () => {
    const p = newPath();
    const sub = await subscribe({ url: sink.url(p) });
    expect(sub.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    startWorker();
    const jobId = await track();
    await move(jobId);
    const [req] = await sink.waitFor(p, 1);
    const verified = new Webhook(sub.secret).verify(req!.body, headersOf(req!)) as any;
    expect(verified.type).toBe('job.succeeded');
    expect(verified.data.job.id).toBe(jobId);
    expect(verified.data.job.status).toBe('succeeded');
    expect(verified.data.sequence).toBe(2);
    expect(req!.headers['webhook-id']).toBe(verified.data.event_id);
    expect(new Date(verified.timestamp).toISOString()).toBe(verified.timestamp);
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(req!.body, headersOf(req!))).toThrow();

    const [d] = await deliveriesOf(`job_id=${jobId}`);
    const done = await waitForDelivery(d.id, (x) => x.status === 'delivered');
    expect(done.attempt_log).toHaveLength(1);
    expect(done.attempt_log[0].status_code).toBe(200);
  });

  it('after rotate-secret, deliveries verify with the new and the old secret for the grace period', async () => {
    const p = newPath();
    const sub = await subscribe({ url: sink.url(p) });
    const res = await relay.api('POST', `/v1/subscriptions/${sub.id}/rotate-secret`);
    expect(res.status).toBe(200);
    const rotated = (await res.json()) as any;
    expect(rotated.secret).not.toBe(sub.secret);
    expect(Date.parse(rotated.previous_secret_expires_at) - Date.now()).toBeGreaterThan(23 * 3600 * 1000);
    startWorker();
    await move(await track());
    const [req] = await sink.waitFor(p, 1);
    expect(String(req!.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(new Webhook(rotated.secret).verify(req!.body, headersOf(req!))).toBeTruthy();
    expect(new Webhook(sub.secret).verify(req!.body, headersOf(req!))).toBeTruthy();

    // A secret of one's own, and bad ones refused with the reason.
    const own = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    const mine = await relay.api('POST', `/v1/subscriptions/${sub.id}/rotate-secret`, { secret: own });
    expect(((await mine.json()) as any).secret).toBe(own);
    for (const bad of ['nope', 'whsec_!!!!', `whsec_${Buffer.alloc(8).toString('base64')}`]) {
      const r = await relay.api('POST', `/v1/subscriptions/${sub.id}/rotate-secret`, { secret: bad });
      expect(r.status).toBe(400);
      expect(((await r.json()) as any).error.details[0].field).toBe('secret');
    }
  });

  it('matches by event type, provider and metadata containment; notify_url gets the outcome', async () => {
    const all = newPath();
    const processing = newPath();
    const genOnly = newPath();
    const vip = newPath();
    const notify = newPath();
    await subscribe({ url: sink.url(all), event_types: ['job.submitted', 'job.processing', 'job.succeeded'] });
    await subscribe({ url: sink.url(processing), event_types: ['job.processing'] });
    await subscribe({ url: sink.url(genOnly), providers: ['gen'] });
    await subscribe({ url: sink.url(vip), metadata: { tier: 'vip' } });
    startWorker();

    const a = await track({ metadata: { tier: 'vip', order: '1' }, notify_url: sink.url(notify) });
    await move(a, 'processing');
    await move(a, 'succeeded');
    const b = await track({ provider: 'gen', metadata: { tier: 'free' } });
    await move(b, 'failed');

    await sink.waitFor(all, 4); // a: submitted, processing, succeeded; b: submitted
    await sink.waitFor(processing, 1);
    await sink.waitFor(genOnly, 1);
    await sink.waitFor(vip, 1);
    await sink.waitFor(notify, 1);
    await new Promise((r) => setTimeout(r, 300));
    const types = (p: string) => sink.requests(p).map((r) => `${JSON.parse(r.body).data.job.id === a ? 'a' : 'b'}:${JSON.parse(r.body).type}`);
    expect(types(all).sort()).toEqual(['a:job.processing', 'a:job.submitted', 'a:job.succeeded', 'b:job.submitted']);
    expect(types(processing)).toEqual(['a:job.processing']);
    expect(types(genOnly)).toEqual(['b:job.failed']);
    expect(types(vip)).toEqual(['a:job.succeeded']);
    expect(types(notify)).toEqual(['a:job.succeeded']);

    // notify_url deliveries are signed with the relay's notify secret, which the API hands out.
    const secret = ((await (await relay.api('GET', '/v1/notify-secret')).json()) as any).secret;
    const req = sink.requests(notify)[0]!;
    expect(new Webhook(secret).verify(req.body, headersOf(req))).toBeTruthy();
  });

  it('a subscription created after an event does not receive it', async () => {
    const before = newPath();
    const after = newPath();
    await subscribe({ url: sink.url(before) });
    const jobId = await track();
    await move(jobId);
    await subscribe({ url: sink.url(after) });
    startWorker();
    await sink.waitFor(before, 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.requests(after)).toHaveLength(0);
    expect(await deliveriesOf(`job_id=${jobId}`)).toHaveLength(1);
  });

  it('500 then 200: delivered on the second attempt, both attempts recorded', async () => {
    const p = newPath();
    sink.on(p, (_r, n) => (n === 1 ? { status: 500, body: 'boom' } : { status: 200, body: 'ok' }));
    const sub = await subscribe({ url: sink.url(p) });
    startWorker();
    const jobId = await track();
    await move(jobId);
    const [d] = await deliveriesOf(`subscription_id=${sub.id}`);
    const done = await waitForDelivery(d.id, (x) => x.status === 'delivered');
    expect(done.attempts).toBe(2);
    expect(done.attempt_log.map((a: any) => [a.attempt, a.status_code, a.response_excerpt])).toEqual([
      [1, 500, 'boom'],
      [2, 200, 'ok'],
    ]);
    const reqs = sink.requests(p);
    expect(reqs[0]!.headers['webhook-id']).toBe(reqs[1]!.headers['webhook-id']);
    expect(reqs[0]!.body).toBe(reqs[1]!.body);
  });

  it('410 disables the subscription; re-enabling with PATCH sends what waited', async () => {
    const p = newPath();
    let gone = true;
    sink.on(p, () => (gone ? { status: 410 } : { status: 200 }));
    const sub = await subscribe({ url: sink.url(p) });
    startWorker();
    await move(await track());
    await sink.waitFor(p, 1);
    const deadline = Date.now() + 5000;
    let s: any;
    do {
      s = await (await relay.api('GET', `/v1/subscriptions/${sub.id}`)).json();
    } while (s.enabled && Date.now() < deadline && (await new Promise((r) => setTimeout(r, 20)), true));
    expect(s).toMatchObject({ enabled: false, disabled_reason: 'gone' });

    // Events while disabled make no deliveries; the one that met the 410 waits, unscheduled.
    await move(await track());
    const [waiting, ...rest] = await deliveriesOf(`subscription_id=${sub.id}`);
    expect(rest).toHaveLength(0);
    expect(waiting).toMatchObject({ status: 'pending', next_attempt_at: null, last_status_code: 410 });

    gone = false;
    const res = await relay.api('PATCH', `/v1/subscriptions/${sub.id}`, { enabled: true });
    expect(((await res.json()) as any)).toMatchObject({ enabled: true, disabled_reason: null });
    await waitForDelivery(waiting.id, (x) => x.status === 'delivered');
    expect(sink.requests(p)).toHaveLength(2);
  });

  it('a subscriber that never answers times out, and the attempt says so', async () => {
    const p = newPath();
    sink.on(p, () => 'hang');
    const sub = await subscribe({ url: sink.url(p) });
    startWorker(fastDelivery({ timeout_s: 0.3, retry_schedule_s: [0] }));
    await move(await track());
    const [d] = await deliveriesOf(`subscription_id=${sub.id}`);
    const dead = await waitForDelivery(d.id, (x) => x.status === 'dead');
    expect(dead.attempt_log[0].status_code).toBeNull();
    expect(dead.attempt_log[0].error).toMatch(/timeout/);
    expect(dead.attempt_log[0].latency_ms).toBeGreaterThanOrEqual(250);
  });

  it('a 3xx is a failure and the redirect is not followed', async () => {
    const p = newPath();
    const target = newPath();
    sink.on(p, () => ({ status: 302, headers: { location: sink.url(target) } }));
    const sub = await subscribe({ url: sink.url(p) });
    startWorker(fastDelivery({ retry_schedule_s: [0] }));
    await move(await track());
    const [d] = await deliveriesOf(`subscription_id=${sub.id}`);
    const dead = await waitForDelivery(d.id, (x) => x.status === 'dead');
    expect(dead.attempt_log[0]).toMatchObject({ status_code: 302, error: 'HTTP 302' });
    expect(sink.requests(target)).toHaveLength(0);
  });

  it('exhausted → dead → manual retry → delivered', async () => {
    const p = newPath();
    let up = false;
    sink.on(p, () => (up ? { status: 204 } : { status: 503 }));
    const sub = await subscribe({ url: sink.url(p) });
    startWorker();
    await move(await track());
    const [d] = await deliveriesOf(`subscription_id=${sub.id}`);
    const dead = await waitForDelivery(d.id, (x) => x.status === 'dead');
    expect(dead.attempts).toBe(3);
    expect(dead.next_attempt_at).toBeNull();
    expect((await deliveriesOf('status=dead')).map((x) => x.id)).toContain(d.id);

    up = true;
    const retry = await relay.api('POST', `/v1/deliveries/${d.id}/retry`);
    expect(retry.status).toBe(202);
    const delivered = await waitForDelivery(d.id, (x) => x.status === 'delivered');
    expect(delivered.attempt_log.map((a: any) => a.status_code)).toEqual([503, 503, 503, 204]);
  });

  it('Retry-After on a 429 is honoured (at least the 1 s floor, not the 50 ms schedule)', async () => {
    const p = newPath();
    sink.on(p, (_r, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }));
    await subscribe({ url: sink.url(p) });
    startWorker();
    await move(await track());
    const [first, second] = await sink.waitFor(p, 2);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(900);
  });

  it('a subscription failing without a success for longer than disable_after_s is disabled', async () => {
    const p = newPath();
    sink.on(p, () => ({ status: 500 }));
    const sub = await subscribe({ url: sink.url(p) });
    startWorker(fastDelivery({ retry_schedule_s: [0, 0.3, 0.3, 0.3], disable_after_s: 0.2 }));
    await move(await track());
    const deadline = Date.now() + 5000;
    let s: any;
    do {
      await new Promise((r) => setTimeout(r, 50));
      s = await (await relay.api('GET', `/v1/subscriptions/${sub.id}`)).json();
    } while (s.enabled && Date.now() < deadline);
    expect(s).toMatchObject({ enabled: false, disabled_reason: 'failing' });
    expect(s.failing_since).not.toBeNull();
  });

  it('one subscriber that hangs does not hold back another', async () => {
    const slow = newPath();
    const fast = newPath();
    sink.on(slow, () => 'hang');
    await subscribe({ url: sink.url(slow) });
    await subscribe({ url: sink.url(fast) });
    startWorker(fastDelivery({ timeout_s: 2.5 }), { maxInFlight: 16, perTargetInFlight: 4 });
    const jobs = await Promise.all(Array.from({ length: 30 }, () => track()));
    const started = Date.now();
    for (const j of jobs) await move(j);
    const moved = Date.now();
    const got = await sink.waitFor(fast, 30, 3000);
    // Every fast delivery arrived well before the slow subscriber's first timeout (2.5 s).
    expect(Math.max(...got.map((r) => r.at)) - moved).toBeLessThan(1500);
    expect(sink.requests(slow).length).toBeLessThanOrEqual(4);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('a backlog deeper than one claim drains without waiting for the idle timer', async () => {
    const p = newPath();
    await subscribe({ url: sink.url(p) });
    const jobs = await Promise.all(Array.from({ length: 40 }, () => track()));
    await relay.deps.db.transaction(async (tx) => {
      for (const j of jobs) await applyObservation(tx, j, { status: 'succeeded', videoUrls: [] });
    });
    // At most 4 per claim and 8 in flight: many claims, each started by a finished send, none by the 60 s timer.
    startWorker(fastDelivery(), { idleMs: 60_000, perTargetInFlight: 4, maxInFlight: 8 });
    await sink.waitFor(p, 40, 5000);
  });

  it('retries of many deliveries go out on their schedule, not on the idle timer', async () => {
    const p = newPath();
    const seen = new Map<string, number>();
    sink.on(p, (req) => {
      const id = String(req.headers['webhook-id']);
      seen.set(id, (seen.get(id) ?? 0) + 1);
      return seen.get(id) === 1 ? { status: 500 } : { status: 200 };
    });
    const sub = await subscribe({ url: sink.url(p) });
    startWorker(fastDelivery({ retry_schedule_s: [0, 0.2, 0.2] }), { idleMs: 60_000 });
    const jobs = await Promise.all(Array.from({ length: 12 }, () => track()));
    for (const j of jobs) {
      await move(j);
      await new Promise((r) => setTimeout(r, 30)); // retries fall due at different times
    }
    await sink.waitFor(p, 24, 8000); // the idle timer is 60 s: a missed wake-up shows
    // Outcomes are recorded just after the answers: wait for the last ones.
    const deadline = Date.now() + 3000;
    let list = await deliveriesOf(`subscription_id=${sub.id}`);
    while (list.some((d) => d.status !== 'delivered') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      list = await deliveriesOf(`subscription_id=${sub.id}`);
    }
    expect(list.map((d) => `${d.status}/${d.attempts}`)).toEqual(Array(12).fill('delivered/2'));
  });

  it('stopping gives up a delivery still in flight after the grace period and releases it for the next worker', async () => {
    const p = newPath();
    sink.on(p, (_r, n) => (n === 1 ? 'hang' : { status: 200 }));
    const sub = await subscribe({ url: sink.url(p) });
    const first = startWorker(fastDelivery({ timeout_s: 30 }));
    await move(await track());
    await sink.waitFor(p, 1);
    const stopped = Date.now();
    await first.stop(300);
    worker = null;
    expect(Date.now() - stopped).toBeLessThan(5000);
    const [d] = await deliveriesOf(`subscription_id=${sub.id}`);
    expect(d).toMatchObject({ status: 'pending', attempts: 0 });
    const [row] = await executeRows<{ lease_until: unknown }>(relay.deps.db, sql`select lease_until from deliveries where id = ${d.id}`);
    expect(row!.lease_until).toBeNull();

    startWorker();
    const done = await waitForDelivery(d.id, (x) => x.status === 'delivered');
    expect(done.attempt_log.map((a: any) => a.status_code)).toEqual([200]);
  });

  it('the connect-time guard refuses a name that resolves to loopback', async () => {
    const p = newPath();
    // Creation allows it (the name is not an address); DNS answers 127.0.0.1 when the worker connects.
    const url = sink.url(p).replace('127.0.0.1', 'hooks.example.com');
    const sub = await subscribe({ url });
    startWorker(fastDelivery({ allow_private_targets: false, retry_schedule_s: [0] }), {
      resolve: (_host, _opts, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }]),
    });
    await move(await track());
    const [d] = await deliveriesOf(`subscription_id=${sub.id}`);
    const dead = await waitForDelivery(d.id, (x) => x.status === 'dead');
    expect(dead.attempt_log[0].error).toMatch(/loopback/);
    expect(sink.requests(p)).toHaveLength(0);
  });

  it('creation refuses private targets with the rule, unless allow_private_targets', async () => {
    relay.deps.config.delivery.allow_private_targets = false;
    try {
      for (const [url, rule] of [
        ['http://127.0.0.1/x', 'loopback'],
        ['http://0x7f000001/x', 'loopback'],
        ['http://10.1.2.3/x', 'private'],
        ['http://169.254.169.254/latest', 'metadata'],
        ['http://[::ffff:192.168.0.1]/', 'ipv4_mapped'],
        ['http://localhost:8080/', 'localhost_name'],
      ] as const) {
        const res = await relay.api('POST', '/v1/subscriptions', { url });
        expect(res.status, url).toBe(400);
        expect(((await res.json()) as any).error.details[0]).toMatchObject({ field: 'url', rule });
      }
      const track = await relay.api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: 'guarded', notify_url: 'http://192.168.1.1/' });
      expect(track.status).toBe(400);
      expect(((await track.json()) as any).error.details[0]).toMatchObject({ field: 'notify_url', rule: 'private' });
      expect((await relay.api('POST', '/v1/subscriptions', { url: 'https://hooks.example.com/x' })).status).toBe(201);
    } finally {
      relay.deps.config.delivery.allow_private_targets = true;
    }
  });

  it('the subscription API validates, pages, patches and deletes', async () => {
    const bad = await relay.api('POST', '/v1/subscriptions', { url: 'https://h.example/x', providers: ['nope'] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.details[0].field).toBe('providers.0');
    expect((await relay.api('POST', '/v1/subscriptions', { url: 'https://h.example/x', event_types: ['job.done'] })).status).toBe(400);
    expect((await relay.api('POST', '/v1/subscriptions', { url: 'ftp://h.example/x' })).status).toBe(400);
    expect((await relay.api('POST', '/v1/subscriptions', { url: 'https://h.example/x', extra: 1 })).status).toBe(400);

    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await subscribe({ url: `https://h.example/${i}` })).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await relay.api('GET', `/v1/subscriptions?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      const page = (await res.json()) as any;
      expect(page.data.every((s: any) => s.secret === undefined)).toBe(true);
      seen.push(...page.data.map((s: any) => s.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const patched = await relay.api('PATCH', `/v1/subscriptions/${ids[0]}`, { event_types: ['job.failed'], providers: ['gen'], enabled: false });
    expect(((await patched.json()) as any)).toMatchObject({ event_types: ['job.failed'], providers: ['gen'], enabled: false, disabled_reason: 'manual' });
    expect((await relay.api('DELETE', `/v1/subscriptions/${ids[0]}`)).status).toBe(200);
    expect((await relay.api('GET', `/v1/subscriptions/${ids[0]}`)).status).toBe(404);
    expect((await relay.api('POST', '/v1/deliveries/dlv_nope/retry')).status).toBe(404);
  });
});
