import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFileConfig } from '../../src/config.js';
import { callbackReceipts, deliveries, deliveryAttempts, jobEvents, jobs } from '../../src/db/schema.js';
import { newId } from '../../src/ids.js';
import { retryDelivery } from '../../src/fanout/deliveries.js';
import { pruneOnce } from '../../src/ops/retention.js';
import { createTestDatabase, dbKind, type TestDatabase } from '../helpers/db.js';

const daysAgo = (d: number) => new Date(Date.now() - d * 86_400_000);

describe(`retention (${dbKind})`, () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t?.cleanup());

  async function job(status: 'succeeded' | 'processing') {
    const id = newId('job');
    await t.database.db.insert(jobs).values({ id, provider: 'p', status });
    return id;
  }
  async function event(jobId: string, seq: number, ageDays: number) {
    const eventId = newId('evt');
    await t.database.db.insert(jobEvents).values({ eventId, jobId, sequence: seq, type: 'job.succeeded', data: {}, createdAt: daysAgo(ageDays) });
    return eventId;
  }
  async function delivery(jobId: string, eventId: string, status: 'pending' | 'delivered', ageDays: number) {
    const id = newId('dlv');
    await t.database.db.insert(deliveries).values({ id, url: 'https://h.example', jobId, eventId, eventType: 'job.succeeded', status, createdAt: daysAgo(ageDays) });
    await t.database.db.insert(deliveryAttempts).values({ deliveryId: id, attempt: 1, startedAt: daysAgo(ageDays), latencyMs: 3 });
    return id;
  }
  const count = async (table: typeof jobs | typeof jobEvents | typeof deliveries | typeof deliveryAttempts | typeof callbackReceipts) =>
    Number(((await t.database.db.select({ n: sql<number>`count(*)` }).from(table)) as [{ n: number }])[0].n);

  it('prunes old receipts, finished deliveries with their attempts, and old events of final jobs, in batches', async () => {
    const done = await job('succeeded');
    const running = await job('processing');
    const oldEvent = await event(done, 1, 100);
    const recentEvent = await event(done, 2, 1);
    const runningEvent = await event(running, 1, 100);
    const waitingJob = await job('succeeded');
    const waitingEvent = await event(waitingJob, 1, 100);
    await delivery(done, oldEvent, 'delivered', 40);
    await delivery(done, recentEvent, 'delivered', 1);
    await delivery(waitingJob, waitingEvent, 'pending', 40);
    for (let i = 0; i < 7; i++) {
      await t.database.db.insert(callbackReceipts).values({
        provider: 'p', jobId: done, route: 'job', verdict: 'applied', headers: {}, body: Buffer.from('{}'), bodySize: 2,
        receivedAt: daysAgo(i < 5 ? 40 : 1),
      });
    }

    const config = parseFileConfig('{}', {}).retention;
    const counts = await pruneOnce(t.database.db, config, { batch: 2, pauseMs: 0 });
    expect(counts).toEqual({ receipts: 5, attempts: 2, deliveries: 1, events: 1 });
    expect(await count(callbackReceipts)).toBe(2);
    // Kept: the recent event, the running job's event, and the event whose delivery is still pending.
    const kept = (await t.database.db.select({ id: jobEvents.eventId }).from(jobEvents)).map((e) => e.id).sort();
    expect(kept).toEqual([recentEvent, runningEvent, waitingEvent].sort());
    expect(await count(deliveries)).toBe(2);
    expect(await count(jobs)).toBe(3);

    // null keeps a kind forever.
    await t.database.db.insert(callbackReceipts).values({
      provider: 'p', jobId: done, route: 'job', verdict: 'applied', headers: {}, body: Buffer.from('{}'), bodySize: 2, receivedAt: daysAgo(400),
    });
    const forever = await pruneOnce(t.database.db, { receipts_days: null, deliveries_days: null, events_days: null });
    expect(forever).toEqual({ receipts: 0, attempts: 0, deliveries: 0, events: 0 });
  });

  // Two connections at once: PostgreSQL only.
  it.skipIf(dbKind !== 'postgres')('a manual retry racing retention either keeps its delivery or finds it gone, never both', async () => {
    const config = parseFileConfig('{}', {}).retention;
    const notifier = { notify() {}, subscribe: () => () => {}, listening: async () => {}, close: async () => {} };
    // Retention first: it holds the event (as its delete does) while a retry comes in.
    const jobA = await job('succeeded');
    const eventA = await event(jobA, 1, 100);
    const dlvA = await delivery(jobA, eventA, 'delivered', 40);
    let retried: Promise<unknown> | null = null;
    await t.database.db.transaction(async (tx) => {
      await tx.execute(sql`select id from job_events where event_id = ${eventA} for update`);
      retried = retryDelivery({ db: t.database.db, notifier }, dlvA).then(
        () => 'retried',
        (err: Error) => err.message,
      );
      await new Promise((r) => setTimeout(r, 200));
      await tx.execute(sql`delete from job_events where event_id = ${eventA}`);
    });
    expect(await retried).toMatch(/not found/);
    // The retry first: retention passes over the event, and the delivery, pending again, keeps it.
    const jobB = await job('succeeded');
    const eventB = await event(jobB, 1, 100);
    const dlvB = await delivery(jobB, eventB, 'delivered', 40);
    await retryDelivery({ db: t.database.db, notifier }, dlvB);
    await pruneOnce(t.database.db, { ...config, deliveries_days: null }, { pauseMs: 0 });
    const [kept] = await t.database.db.select().from(deliveries).where(eq(deliveries.id, dlvB));
    expect(kept?.status).toBe('pending');
  });

  it('the retention settings are validated', () => {
    expect(parseFileConfig('{"retention": {"receipts_days": 7, "events_days": null}}', {}).retention).toEqual({
      receipts_days: 7,
      deliveries_days: 30,
      events_days: null,
    });
    expect(() => parseFileConfig('{"retention": {"receipts_days": 0}}', {})).toThrow(/receipts_days/);
    expect(() => parseFileConfig('{"retention": {"keep": 1}}', {})).toThrow(/retention/);
  });
});
