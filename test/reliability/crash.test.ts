import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbKind } from '../helpers/db.js';
import {
  type CallbackStream,
  eventually,
  mapLimit,
  type RelayFixture,
  relayFixture,
  startCallbackStream,
  trackJobs,
} from '../helpers/reliability.js';
import { type Sink, startSink } from '../helpers/sink.js';

const PROVIDER = 'veo';
const KILLS = 3;
/** Acknowledged callbacks each lifetime of the relay must see before it is killed. */
const ACKS_PER_LIFE = 30;

interface FeedEvent {
  event_id: string;
  job_id: string;
  type: string;
  sequence: number;
}

describe(`callbacks under kill -9 (${dbKind})`, () => {
  let fixture: RelayFixture;
  let sink: Sink;

  beforeAll(async () => {
    sink = await startSink();
    fixture = await relayFixture({
      // The provider is never asked: verify_by_fetch is off, and nothing polls before 10 minutes.
      providers: { [PROVIDER]: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } },
      // A short timeout keeps the delivery lease (2 × timeout + 5 s) a killed process leaves behind short.
      delivery: { timeout_s: 1, retry_schedule_s: [0, 0.2, 0.5, 1, 1, 2, 2, 4], allow_private_targets: true },
    });
  });

  afterAll(async () => {
    await fixture?.cleanup();
    await sink?.close();
  });

  async function feed(): Promise<FeedEvent[]> {
    const all: FeedEvent[] = [];
    let after: string | undefined;
    for (;;) {
      const res = await fixture.api('GET', `/v1/events?limit=500${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { data: FeedEvent[]; next_cursor: string; has_more: boolean };
      all.push(...page.data);
      after = page.next_cursor;
      if (!page.has_more || page.data.length === 0) return all;
    }
  }

  it('every acknowledged callback is stored and applied exactly once, and its event reaches the subscriber', { timeout: 120_000 }, async () => {
    await fixture.start();
    const subRes = await fixture.api('POST', '/v1/subscriptions', { url: sink.url('/hook'), event_types: ['job.succeeded'] });
    expect(subRes.status).toBe(201);
    const sub = (await subRes.json()) as { id: string; secret: string };
    const jobs = await trackJobs(fixture, PROVIDER, 600, `crash-${Date.now()}`);

    // 40 callbacks a second, each for a job of its own, while the relay is killed three times.
    const stream: CallbackStream = startCallbackStream({ base: fixture.base, provider: PROVIDER, jobs, perSecond: 40 });
    const lives: { acked: number }[] = [];
    try {
      for (let k = 0; k < KILLS; k++) {
        const before = stream.count(200);
        await stream.waitForMore(200, ACKS_PER_LIFE);
        // Killed while callbacks are being handled, not between two of them.
        const waitUntil = Date.now() + 2000;
        while (stream.inFlight() === 0 && Date.now() < waitUntil) await new Promise((r) => setImmediate(r));
        await fixture.kill();
        lives.push({ acked: stream.count(200) - before });
        await fixture.start();
      }
      const before = stream.count(200);
      await stream.waitForMore(200, ACKS_PER_LIFE);
      lives.push({ acked: stream.count(200) - before });
    } finally {
      await stream.stop();
    }
    expect(lives).toHaveLength(KILLS + 1);
    for (const life of lives) expect(life.acked).toBeGreaterThanOrEqual(ACKS_PER_LIFE);

    // The stream went on while the relay was away.
    expect(stream.refused()).toBeGreaterThan(0);
    // Anything answered was either stored (200) or told to retry (503); nothing else.
    for (const o of stream.outcomes) if (o.status !== null) expect([200, 503], o.body).toContain(o.status);

    const acked = stream.outcomes.filter((o) => o.status === 200);
    for (const o of acked) expect(JSON.parse(o.body)).toMatchObject({ ok: true, verdict: 'applied', job_id: o.job.id, status: 'succeeded' });

    // Every acknowledged callback: one receipt, applied; its job succeeded with exactly one job.succeeded event.
    const checks = await mapLimit(acked, 8, async ({ job }) => {
      const [jobRes, receiptsRes, eventsRes] = await Promise.all([
        fixture.api('GET', `/v1/jobs/${job.id}`),
        fixture.api('GET', `/v1/jobs/${job.id}/callbacks`),
        fixture.api('GET', `/v1/jobs/${job.id}/events`),
      ]);
      const got = (await jobRes.json()) as { status: string; result: { video_urls: string[] } | null };
      const receipts = ((await receiptsRes.json()) as { data: { verdict: string }[] }).data;
      const events = ((await eventsRes.json()) as { data: FeedEvent[] }).data;
      return {
        job: job.id,
        status: got.status,
        urls: got.result?.video_urls,
        verdicts: receipts.map((r) => r.verdict),
        events: events.map((e) => [e.sequence, e.type]),
      };
    });
    for (const [k, c] of checks.entries()) {
      expect(c, `acknowledged callback for ${c.job}`).toEqual({
        job: c.job,
        status: 'succeeded',
        urls: [`https://x.example/${acked[k]!.job.taskId}.mp4`],
        verdicts: ['applied'],
        events: [
          [1, 'job.submitted'],
          [2, 'job.succeeded'],
        ],
      });
    }

    // No job, acknowledged or not, has more than one terminal event.
    const events = await feed();
    const succeeded = events.filter((e) => e.type === 'job.succeeded');
    const perJob = new Map<string, number>();
    for (const e of succeeded) perJob.set(e.job_id, (perJob.get(e.job_id) ?? 0) + 1);
    expect([...perJob.values()].filter((n) => n > 1)).toEqual([]);
    const ackedIds = new Set(acked.map((o) => o.job.id));
    for (const id of ackedIds) expect(perJob.get(id), id).toBe(1);
    // Jobs whose callback never reached the relay were never touched.
    const sent = new Set(stream.outcomes.map((o) => o.job.id));
    expect(succeeded.filter((e) => !sent.has(e.job_id))).toEqual([]);

    // The subscriber gets every job.succeeded event at least once (acknowledged or not), signed,
    // the webhook-id being the event id.
    const wanted = new Map(succeeded.map((e) => [e.event_id, e]));
    const received = () => new Set(sink.requests('/hook').map((r) => String(r.headers['webhook-id'])));
    await eventually(
      () => [...wanted.keys()].every((id) => received().has(id)),
      45_000,
      () => `${[...wanted.keys()].filter((id) => !received().has(id)).length} of ${wanted.size} events not delivered`,
    );
    const hook = new Webhook(sub.secret);
    const seen = new Set<string>();
    for (const r of sink.requests('/hook')) {
      const id = String(r.headers['webhook-id']);
      const payload = hook.verify(r.body, {
        'webhook-id': id,
        'webhook-timestamp': String(r.headers['webhook-timestamp']),
        'webhook-signature': String(r.headers['webhook-signature']),
      }) as { type: string; data: { event_id: string; job: { id: string; status: string } } };
      const event = wanted.get(id);
      expect(event, `delivery ${id} is for a job.succeeded event in the feed`).toBeDefined();
      expect(payload).toMatchObject({ type: 'job.succeeded', data: { event_id: id, job: { id: event!.job_id, status: 'succeeded' } } });
      seen.add(id);
    }
    expect(seen.size).toBe(wanted.size);
    expect(wanted.size).toBeGreaterThanOrEqual(acked.length);

    // And no delivery ended dead.
    const dead = (await (await fixture.api('GET', `/v1/deliveries?subscription_id=${sub.id}&status=dead`)).json()) as { data: unknown[] };
    expect(dead.data).toEqual([]);
  });
});
