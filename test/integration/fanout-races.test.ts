import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimDueDeliveries, msUntilNextDelivery } from '../../src/fanout/claim.js';
import { disableSubscriptions, recordOutcomes } from '../../src/fanout/record.js';
import { createSubscription } from '../../src/fanout/subscriptions.js';
import { deliveries, jobs } from '../../src/db/schema.js';
import { newId } from '../../src/ids.js';
import { applyObservation } from '../../src/jobs/transition.js';
import { createTestDatabase, dbKind, type TestDatabase } from '../helpers/db.js';

describe(`fan-out under concurrent changes to a subscription (${dbKind})`, () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t?.cleanup());

  const ctx = () => ({ db: t.database.db, providerNames: new Set(['p']), allowPrivateTargets: true });
  async function job() {
    const id = newId('job');
    await t.database.db.insert(jobs).values({ id, provider: 'p', providerTaskId: id, status: 'processing' });
    return id;
  }

  it('an outcome recorded while the subscription is disabled keeps a due time, so re-enabling can never strand it', async () => {
    const sub = await createSubscription(ctx(), { url: 'https://h.example/a' });
    const jobId = await job();
    await t.database.db.transaction((tx) => applyObservation(tx, jobId, { status: 'succeeded' }));
    const [claimed] = await claimDueDeliveries(t.database.db, { limit: 10, perTarget: 10, allowance: {}, leaseMs: 60_000 });
    expect(claimed).toBeDefined();
    await t.database.db.transaction((tx) => disableSubscriptions(tx, [sub.id], 'gone'));
    await recordOutcomes(
      t.database.db,
      [{ id: claimed!.id, claims: claimed!.claims, attempt: 1, status: 'pending', delayMs: 0, startedAt: new Date().toISOString(),
         statusCode: 500, latencyMs: 1, error: 'HTTP 500', excerpt: null, subscriptionId: sub.id, success: false, gone: false }],
      3600,
    );
    const [row] = await t.database.db.select().from(deliveries).where(eq(deliveries.id, claimed!.id));
    expect(row!.nextAttemptAt).not.toBeNull();
    // Disabled: not due for the workers, so they neither claim it nor wake for it.
    expect(await msUntilNextDelivery(t.database.db)).toBeNull();
    expect(await claimDueDeliveries(t.database.db, { limit: 10, perTarget: 10, allowance: {}, leaseMs: 60_000 })).toEqual([]);
    await t.database.db.execute(sql`update subscriptions set disabled_at = null where id = ${sub.id}`);
    expect((await claimDueDeliveries(t.database.db, { limit: 10, perTarget: 10, allowance: {}, leaseMs: 60_000 })).map((d) => d.id)).toEqual([claimed!.id]);
    await t.database.db.execute(sql`delete from subscriptions`);
  });

  it.skipIf(dbKind === 'pglite')('disabling waits for a transition still writing deliveries, and parks those too', async () => {
    const sub = await createSubscription(ctx(), { url: 'https://h.example/b' });
    const jobId = await job();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let written!: () => void;
    const inserted = new Promise<void>((r) => (written = r));
    const transition = t.database.db.transaction(async (tx) => {
      await applyObservation(tx, jobId, { status: 'succeeded' });
      written();
      await gate;
    });
    await inserted;
    const disabling = t.database.db.transaction((tx) => disableSubscriptions(tx, [sub.id], 'gone'));
    await new Promise((r) => setTimeout(r, 200));
    release();
    await transition;
    expect(await disabling).toEqual([sub.id]);
    const rows = await t.database.db.select().from(deliveries).where(eq(deliveries.subscriptionId, sub.id));
    expect(rows.map((d) => d.nextAttemptAt)).toEqual([null]);
    expect(await msUntilNextDelivery(t.database.db)).toBeNull();
  });
});
