import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobCallbackUrl } from '../../src/callbacks/tokens.js';
import { dbKind } from '../helpers/db.js';
import { SECRET } from '../helpers/relay.js';
import { completedCallback, eventually, mapLimit, type RelayFixture, relayFixture, trackJobs } from '../helpers/reliability.js';
import { type Sink, type SinkRequest, startSink } from '../helpers/sink.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const PROVIDER = 'veo';
const JOBS = 30;
/** Eight attempts over ~14.5 s (±20 % jitter each): an outage of a few seconds is well inside it. */
const SCHEDULE = [0, 0.5, 1, 1, 2, 2, 4, 4];
const OUTAGE_MS = 4000;

interface Delivery {
  id: string;
  subscription_id: string;
  event_id: string;
  job_id: string;
  status: 'pending' | 'delivered' | 'dead';
  attempts: number;
}

describe(`subscribers that go away for a while (${dbKind})`, () => {
  let sink: Sink;
  let proxy: TcpProxy;
  let fixture: RelayFixture;

  beforeAll(async () => {
    sink = await startSink();
    // One subscriber is reached through a proxy that goes down (connections refused) and comes back on the same port.
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(sink.url('/')).port) });
    fixture = await relayFixture({
      providers: { [PROVIDER]: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } },
      delivery: { timeout_s: 1, retry_schedule_s: SCHEDULE, allow_private_targets: true },
    });
  });

  afterAll(async () => {
    await fixture?.cleanup();
    await proxy?.close();
    await sink?.close();
  });

  async function deliveries(query: string): Promise<Delivery[]> {
    const res = await fixture.api('GET', `/v1/deliveries?limit=200&${query}`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as { data: Delivery[]; next_cursor: string | null };
    expect(page.next_cursor).toBeNull();
    return page.data;
  }

  it('every event reaches a subscriber that refused connections or answered 503 for a while, and none is dead; one that never recovers is', { timeout: 90_000 }, async () => {
    await fixture.start();
    let flakyDown = true;
    sink.on('/flaky', () => (flakyDown ? { status: 503, body: 'maintenance' } : { status: 200 }));
    sink.on('/broken', () => ({ status: 500, body: 'broken for good' }));
    const subscribe = async (url: string) => {
      const res = await fixture.api('POST', '/v1/subscriptions', { url, event_types: ['job.succeeded'] });
      expect(res.status).toBe(201);
      return (await res.json()) as { id: string; secret: string };
    };
    const refusing = await subscribe(`http://127.0.0.1:${proxy.port}/refusing`);
    const flaky = await subscribe(sink.url('/flaky'));
    const broken = await subscribe(sink.url('/broken'));
    const jobs = await trackJobs(fixture, PROVIDER, JOBS, `subscriber-outage-${Date.now()}`);

    await proxy.down();
    const outageStart = Date.now();
    const answers = await mapLimit(jobs, 8, async (job) =>
      (await fetch(jobCallbackUrl(fixture.base, SECRET, PROVIDER, job.id), { method: 'POST', headers: { 'content-type': 'application/json' }, body: completedCallback(job.taskId) })).status,
    );
    expect(answers).toEqual(jobs.map(() => 200));
    await new Promise((r) => setTimeout(r, OUTAGE_MS - (Date.now() - outageStart)));
    const flakyDuringOutage = sink.requests('/flaky').length;
    const refusingDuringOutage = sink.requests('/refusing').length;
    flakyDown = false;
    await proxy.up();

    // Both subscribers get every event; the one that never recovers has every one dead after the last attempt.
    const settled = async (subId: string, status: Delivery['status']) => {
      const list = await deliveries(`subscription_id=${subId}`);
      return list.length === JOBS && list.every((d) => d.status === status);
    };
    await eventually(
      async () => (await settled(refusing.id, 'delivered')) && (await settled(flaky.id, 'delivered')),
      30_000,
      () => 'the deliveries to the recovered subscribers are not all delivered',
      250,
    );
    await eventually(() => settled(broken.id, 'dead'), 30_000, () => 'the deliveries to the broken subscriber are not all dead', 250);

    // The outage was felt: no request got through to the refusing subscriber, the other said 503 to every event at least twice.
    expect(refusingDuringOutage).toBe(0);
    expect(flakyDuringOutage).toBeGreaterThanOrEqual(2 * JOBS);

    const events = await mapLimit(jobs, 8, async (job) => {
      const list = ((await (await fixture.api('GET', `/v1/jobs/${job.id}/events`)).json()) as { data: { event_id: string; type: string }[] }).data;
      const succeeded = list.filter((e) => e.type === 'job.succeeded');
      expect(succeeded).toHaveLength(1);
      return { jobId: job.id, eventId: succeeded[0]!.event_id };
    });
    const eventIds = events.map((e) => e.eventId).sort();

    // Every event was answered 2xx by each recovered subscriber, signed with its secret.
    const answered2xx = (requests: SinkRequest[], secret: string) => {
      const hook = new Webhook(secret);
      const ids = new Set<string>();
      for (const r of requests) {
        const id = String(r.headers['webhook-id']);
        expect(hook.verify(r.body, {
          'webhook-id': id,
          'webhook-timestamp': String(r.headers['webhook-timestamp']),
          'webhook-signature': String(r.headers['webhook-signature']),
        })).toMatchObject({ type: 'job.succeeded', data: { event_id: id } });
        ids.add(id);
      }
      return [...ids].sort();
    };
    expect(answered2xx(sink.requests('/refusing'), refusing.secret)).toEqual(eventIds);
    // (/flaky answered 200 to everything after the outage's 503s.)
    expect(answered2xx(sink.requests('/flaky').slice(flakyDuringOutage), flaky.secret)).toEqual(eventIds);
    // The same webhook-id on every attempt: the 503s were for these same events.
    expect([...new Set(sink.requests('/flaky').map((r) => String(r.headers['webhook-id'])))].sort()).toEqual(eventIds);

    // Each delivery to a recovered subscriber took more than one attempt, and nothing of theirs is dead.
    for (const sub of [refusing, flaky]) {
      const list = await deliveries(`subscription_id=${sub.id}`);
      expect(list.map((d) => d.event_id).sort()).toEqual(eventIds);
      for (const d of list) expect(d.attempts).toBeGreaterThanOrEqual(2);
      expect(await deliveries(`subscription_id=${sub.id}&status=dead`)).toEqual([]);
    }
    // The only dead deliveries are the broken subscriber's, each after the whole schedule.
    const dead = await deliveries('status=dead');
    expect(dead.map((d) => d.subscription_id)).toEqual(dead.map(() => broken.id));
    expect(dead.map((d) => d.event_id).sort()).toEqual(eventIds);
    for (const d of dead) expect(d.attempts).toBe(SCHEDULE.length);
    expect(sink.requests('/broken')).toHaveLength(JOBS * SCHEDULE.length);
  });
});
