import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbKind, TEST_DATABASE_URL } from '../helpers/db.js';
import {
  type CallbackOutcome,
  mapLimit,
  type RelayFixture,
  relayFixture,
  startCallbackStream,
  trackJobs,
} from '../helpers/reliability.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const PROVIDER = 'veo';
const OUTAGE_MS = 6000;
/** SPEC: fully working again within this long of the database coming back. */
const RECOVERY_MS = 5000;

// The PostgreSQL server is shared with the other test files, so it is not restarted: the relay
// reaches it through a proxy of the test's own, and the proxy is what goes away.
describe.skipIf(dbKind !== 'postgres')(`a database outage under a stream of callbacks (${dbKind})`, () => {
  let proxy: TcpProxy;
  let fixture: RelayFixture;

  beforeAll(async () => {
    const server = new URL(TEST_DATABASE_URL!);
    proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    fixture = await relayFixture(
      {
        providers: { [PROVIDER]: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } },
        delivery: { allow_private_targets: true },
      },
      {
        scratchUrl: (url) => {
          const viaProxy = new URL(url);
          viaProxy.hostname = '127.0.0.1';
          viaProxy.port = String(proxy.port);
          return viaProxy.toString();
        },
      },
    );
  });

  afterAll(async () => {
    await proxy?.up().catch(() => {});
    await fixture?.cleanup();
    await proxy?.close();
  });

  /** /readyz's status, or null when it does not answer within `timeoutMs`. */
  const readyz = async (timeoutMs = 2000) => {
    try {
      return (await fetch(`${fixture.base}/readyz`, { signal: AbortSignal.timeout(timeoutMs) })).status;
    } catch {
      return null;
    }
  };
  const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

  it('answers 503 and never 200 while the database is away, stays up, and is back within 5 s of its return', { timeout: 90_000 }, async () => {
    const relay = await fixture.start();
    const jobs = await trackJobs(fixture, PROVIDER, 600, `outage-${Date.now()}`);
    expect(await readyz()).toBe(200);

    // A callback not answered within 5 s counts as unanswered: the relay must say 503 rather than hold it.
    const stream = startCallbackStream({ base: fixture.base, provider: PROVIDER, jobs, perSecond: 40, requestTimeoutMs: 5000 });
    let downAt = 0;
    let upAt = 0;
    const duringOutage: { readyz: (number | null)[]; healthz: number[] } = { readyz: [], healthz: [] };
    let readyAgainAt: number | null = null;
    try {
      await stream.waitForMore(200, 40);

      downAt = Date.now();
      await proxy.down();
      // Meanwhile, ask the relay how it is.
      while (Date.now() < downAt + OUTAGE_MS - 500) {
        duringOutage.healthz.push((await fetch(`${fixture.base}/healthz`, { signal: AbortSignal.timeout(2000) })).status);
        duringOutage.readyz.push(await readyz(Math.min(2000, downAt + OUTAGE_MS - Date.now())));
        await new Promise((r) => setTimeout(r, 250));
      }
      await sleepUntil(downAt + OUTAGE_MS);
      await proxy.up();
      upAt = Date.now();

      while (readyAgainAt === null && Date.now() < upAt + RECOVERY_MS + 5000) {
        if ((await readyz(1000)) === 200) readyAgainAt = Date.now();
        else await new Promise((r) => setTimeout(r, 50));
      }
      // Keep the stream going until well past the recovery window.
      await sleepUntil(upAt + RECOVERY_MS + 1500);
    } finally {
      await stream.stop();
    }

    // It stayed the same process throughout, and said it was alive while the database was not.
    expect(relay.proc.exitCode).toBeNull();
    expect(relay.proc.signalCode).toBeNull();
    expect(duringOutage.healthz.length).toBeGreaterThan(3);
    expect(duringOutage.healthz.every((s) => s === 200)).toBe(true);

    // A callback sent while the database is away is answered within 5 s, and while the database
    // is still away, only ever with 503. (One held until the database is back may then be stored: a 200.)
    const outage = stream.outcomes.filter((o) => o.sentAt >= downAt + 100 && o.sentAt < upAt - 100);
    expect(outage.length).toBeGreaterThan(100);
    const answeredDuring = (o: CallbackOutcome) => o.status !== null && o.answeredAt < upAt;
    expect({
      unansweredIn5s: outage.filter((o) => o.status === null).length,
      notA503WhileAway: outage.filter((o) => answeredDuring(o) && o.status !== 503).map((o) => [o.status, o.body]),
    }, `callbacks sent during the outage (${outage.length})`).toEqual({ unansweredIn5s: 0, notA503WhileAway: [] });
    const refusedDuring = outage.filter((o) => answeredDuring(o) && o.status === 503);
    expect(refusedDuring.length).toBeGreaterThanOrEqual(10);
    for (const o of refusedDuring) expect(JSON.parse(o.body)).toMatchObject({ error: { code: 'unavailable', message: expect.any(String), request_id: expect.any(String) } });

    expect(duringOutage.readyz.length).toBeGreaterThan(3);
    expect(duringOutage.readyz, '/readyz while the database is away (null: no answer in 2 s)').toEqual(duringOutage.readyz.map(() => 503));

    // Within 5 s of the database returning, /readyz and callbacks are fine again, and from then on all callbacks are stored.
    expect(readyAgainAt, '/readyz 200 again').not.toBeNull();
    expect(readyAgainAt! - upAt).toBeLessThanOrEqual(RECOVERY_MS);
    const firstOkAfter = stream.outcomes.filter((o) => o.sentAt >= upAt && o.status === 200).sort((a, b) => a.answeredAt - b.answeredAt)[0];
    expect(firstOkAfter, 'a callback sent after the database returned got a 200').toBeDefined();
    expect(firstOkAfter!.answeredAt - upAt).toBeLessThanOrEqual(RECOVERY_MS);
    const late = stream.outcomes.filter((o) => o.sentAt >= upAt + RECOVERY_MS);
    expect(late.length).toBeGreaterThan(20);
    expect(late.filter((o) => o.status !== 200).map((o) => [o.status, o.body || o.error])).toEqual([]);

    // Nothing but 200 (stored) and 503 (retry) at any time.
    expect(stream.outcomes.filter((o) => o.status !== 200 && o.status !== 503).map((o) => [o.status, o.body || o.error])).toEqual([]);

    // Every callback that got a 200, before or after, is stored and applied, once.
    const acked = stream.outcomes.filter((o) => o.status === 200);
    // waitForMore returned before downAt was read, so those 40 were answered at or before it (same millisecond included).
    expect(acked.filter((o) => o.answeredAt <= downAt).length).toBeGreaterThanOrEqual(40);
    const checks = await mapLimit(acked, 8, async ({ job }) => {
      const [got, receipts, events] = await Promise.all(
        [`/v1/jobs/${job.id}`, `/v1/jobs/${job.id}/callbacks`, `/v1/jobs/${job.id}/events`].map(async (p) => (await fixture.api('GET', p)).json()),
      );
      return {
        status: (got as { status: string }).status,
        verdicts: (receipts as { data: { verdict: string }[] }).data.map((r) => r.verdict),
        succeededEvents: (events as { data: { type: string }[] }).data.filter((e) => e.type === 'job.succeeded').length,
      };
    });
    for (const [k, c] of checks.entries()) {
      expect(c, `callback acknowledged for ${acked[k]!.job.id}`).toEqual({ status: 'succeeded', verdicts: ['applied'], succeededEvents: 1 });
    }
  });
});
