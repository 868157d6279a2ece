import { and, count, eq, isNotNull, lte, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { deliveries } from '../db/schema.js';
import type { Metrics, QueueDepths } from '../ops/metrics.js';
import type { Outcome } from './record.js';

/** Deliveries due now: what the workers have yet to send (reads `deliveries_due_idx`). */
async function dueDeliveries(db: Db): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(deliveries)
    .where(and(eq(deliveries.status, 'pending'), isNotNull(deliveries.nextAttemptAt), lte(deliveries.nextAttemptAt, sql`now()`)));
  return row?.n ?? 0;
}

/** Dead deliveries waiting for a person (reads `deliveries_status_idx`). */
async function deadDeliveries(db: Db): Promise<number> {
  const [row] = await db.select({ n: count() }).from(deliveries).where(eq(deliveries.status, 'dead'));
  return row?.n ?? 0;
}

export function registerDeliveryDepths(depths: QueueDepths): void {
  depths.register('due_deliveries', dueDeliveries);
  depths.register('dead_deliveries', deadDeliveries);
}

/** Counts a recorded attempt: `outcome` is delivered, retry (failed, will try again) or dead. */
export function countDelivery(metrics: Metrics, o: Outcome): void {
  metrics.deliveries.inc({ outcome: o.status === 'pending' ? 'retry' : o.status });
  metrics.deliveryLatency.observe(o.latencyMs / 1000);
}
