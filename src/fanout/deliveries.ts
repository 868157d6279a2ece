import { and, asc, desc, eq, inArray, lt, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { toPage } from '../db/rows.js';
import type { Notifier } from '../db/notify.js';
import { type DeliveryRow, type DeliveryStatus, deliveries, deliveryAttempts, jobEvents, subscriptions } from '../db/schema.js';
import { AppError } from '../errors.js';

export interface DeliveryFilters {
  subscriptionId?: string | undefined;
  jobId?: string | undefined;
  statuses?: readonly DeliveryStatus[] | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Newest first, keyset by id (ids sort by creation time); each filter has an index led by it. */
export async function listDeliveries(db: Db, f: DeliveryFilters) {
  const where: SQL[] = [];
  if (f.subscriptionId !== undefined) where.push(eq(deliveries.subscriptionId, f.subscriptionId));
  if (f.jobId !== undefined) where.push(eq(deliveries.jobId, f.jobId));
  if (f.statuses?.length) where.push(inArray(deliveries.status, [...f.statuses]));
  if (f.cursor !== undefined) where.push(lt(deliveries.id, f.cursor));
  const rows = await db
    .select()
    .from(deliveries)
    .where(and(...where))
    .orderBy(desc(deliveries.id))
    .limit(f.limit + 1);
  return toPage(rows, f.limit, (last) => last.id);
}

export async function getDelivery(db: Db, id: string) {
  const [row] = await db.select().from(deliveries).where(eq(deliveries.id, id));
  if (!row) throw new AppError('not_found', `delivery ${id} not found`);
  const attempts = await db
    .select()
    .from(deliveryAttempts)
    .where(eq(deliveryAttempts.deliveryId, id))
    .orderBy(asc(deliveryAttempts.id));
  return { delivery: row, attempts };
}

/**
 * Queues a delivery again by hand, whatever its state: a dead one gets one more attempt (and more
 * only if the schedule has room), a delivered one is sent again (receivers dedupe on `webhook-id`).
 * Refused while it is being sent, and while its subscription is disabled (enable it first).
 */
export async function retryDelivery(ctx: { db: Db; notifier: Notifier }, id: string): Promise<DeliveryRow> {
  const row = await ctx.db.transaction(async (tx) => {
    // The event's row first, then the delivery's (the order retention's delete takes them in): an
    // event retention is deleting makes this wait and then find the delivery gone (404), and one
    // this holds is skipped by retention, whose next pass sees the delivery pending and keeps it.
    const [ref] = await tx.select({ eventId: deliveries.eventId }).from(deliveries).where(eq(deliveries.id, id));
    if (!ref) throw new AppError('not_found', `delivery ${id} not found`);
    await tx.select({ id: jobEvents.id }).from(jobEvents).where(eq(jobEvents.eventId, ref.eventId)).for('key share');
    const [current] = await tx.select().from(deliveries).where(eq(deliveries.id, id)).for('update');
    if (!current) throw new AppError('not_found', `delivery ${id} not found`);
    if (current.leaseUntil && current.leaseUntil.getTime() > Date.now()) {
      throw new AppError('conflict', `delivery ${id} is being sent right now`);
    }
    if (current.subscriptionId) {
      const [sub] = await tx
        .select({ disabledAt: subscriptions.disabledAt })
        .from(subscriptions)
        .where(eq(subscriptions.id, current.subscriptionId));
      if (sub?.disabledAt) {
        throw new AppError('conflict', `subscription ${current.subscriptionId} is disabled; enable it (PATCH enabled: true) first`);
      }
    }
    const [updated] = await tx
      .update(deliveries)
      .set({ status: 'pending', nextAttemptAt: sql`now()` as unknown as Date, leaseUntil: null, updatedAt: new Date() })
      .where(eq(deliveries.id, id))
      .returning();
    return updated!;
  });
  ctx.notifier.notify('relay_deliveries');
  return row;
}
