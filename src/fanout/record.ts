import { sql } from 'drizzle-orm';
import type { Db, Executor, Tx } from '../db/client.js';
import { executeRows, textArray } from '../db/rows.js';
import type { DeliveryStatus } from '../db/schema.js';

/** One attempt's outcome, as the worker records it. */
export interface Outcome {
  id: string;
  claims: number;
  /** The delivery's attempt count including this one. */
  attempt: number;
  status: DeliveryStatus;
  /** Wait before the next attempt, when `status` is pending. */
  delayMs: number | null;
  startedAt: string;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  excerpt: string | null;
  subscriptionId: string | null;
  /** 2xx: the subscription is healthy again. */
  success: boolean;
  /** 410: the subscription asked to be removed. */
  gone: boolean;
}

/** Postgres text refuses NUL; a receiver's answer may hold anything. */
const textSafe = (s: string | null) => (s === null ? null : s.replaceAll('\u0000', ''));

/**
 * Disables subscriptions (`reason`) that are still enabled, and parks their pending deliveries
 * (no next attempt) until they are enabled again. Returns the ids disabled.
 */
export async function disableSubscriptions(tx: Tx, ids: readonly string[], reason: 'gone' | 'failing' | 'manual', only?: ReturnType<typeof sql>) {
  if (!ids.length) return [];
  // Lock first: this waits for transitions still writing deliveries for these subscriptions (they
  // hold key-share locks on them), so the parking below sees those deliveries too.
  await tx.execute(sql`select id from subscriptions
    where id = any (${textArray(ids)}) order by id for update`);
  const disabled = await executeRows<{ id: string }>(
    tx,
    sql`update subscriptions set disabled_at = now(), disabled_reason = ${reason}, updated_at = now()
        where id = any (${textArray(ids)})
          and disabled_at is null ${only ?? sql``}
        returning id`,
  );
  if (disabled.length) {
    await tx.execute(sql`
      update deliveries set next_attempt_at = null, updated_at = now()
      where status = 'pending'
        and subscription_id = any (${textArray(disabled.map((d) => d.id))})`);
  }
  return disabled.map((d) => d.id);
}

/**
 * Records a batch of outcomes in one transaction: each delivery's new state (only if the worker
 * still holds it — `claims` unchanged), every attempt, and what the answers say about the
 * subscriptions: a 410 disables one, a success clears its failing streak, and one that has failed
 * without a success for longer than `disableAfterS` is disabled. Returns the subscriptions disabled.
 */
export async function recordOutcomes(db: Db, outcomes: readonly Outcome[], disableAfterS: number): Promise<string[]> {
  if (!outcomes.length) return [];
  const rows = JSON.stringify(
    outcomes.map((o) => ({
      id: o.id,
      claims: o.claims,
      attempt: o.attempt,
      status: o.status,
      delay_ms: o.delayMs,
      started_at: o.startedAt,
      status_code: o.statusCode,
      latency_ms: o.latencyMs,
      error: textSafe(o.error),
      excerpt: textSafe(o.excerpt),
    })),
  );
  const bySubscription = (pick: (o: Outcome) => boolean) => [
    ...new Set(outcomes.filter((o) => o.subscriptionId !== null && pick(o)).map((o) => o.subscriptionId!)),
  ];
  const gone = bySubscription((o) => o.gone);
  const succeeded = bySubscription((o) => o.success);
  const failed = bySubscription((o) => !o.success).filter((id) => !succeeded.includes(id));

  // The delivery updates, the attempts and the end of failing streaks in one statement: when all
  // went well (the common case) that is the whole write, one round trip with no transaction around it.
  const record = (ex: Executor) =>
    ex.execute(sql`
      with r as (
        select * from jsonb_to_recordset(${rows}::jsonb)
          as r(id text, claims int, attempt int, status text, delay_ms bigint, started_at timestamptz,
               status_code int, latency_ms int, error text, excerpt text)
      ),
      updated as (
        update deliveries d set
          status = r.status,
          attempts = r.attempt,
          -- Always a due time when pending, even for a subscription that looks disabled: the claim
        -- skips those, and a re-enable that commits meanwhile cannot leave it without one.
        next_attempt_at = case when r.status = 'pending' then now() + r.delay_ms * interval '1 millisecond' end,
          lease_until = null,
          last_status_code = r.status_code,
          last_error = r.error,
          delivered_at = case when r.status = 'delivered' then now() else d.delivered_at end,
          updated_at = now()
        from r
        where d.id = r.id and d.claims = r.claims
        returning d.id
      ),
      attempts as (
        insert into delivery_attempts (delivery_id, attempt, started_at, status_code, latency_ms, error, response_excerpt)
        select r.id, r.attempt, r.started_at, r.status_code, r.latency_ms, r.error, r.excerpt
        from r join updated u on u.id = r.id
      ),
      healthy as (
        update subscriptions set failing_since = null
        where id = any (${textArray(succeeded)})
          and failing_since is not null
      )
      select count(*) from updated`);
  if (!gone.length && !failed.length) {
    await record(db);
    return [];
  }
  return db.transaction(async (tx) => {
    await record(tx);
    const disabled = await disableSubscriptions(tx, gone, 'gone');
    if (failed.length) {
      await tx.execute(sql`
        update subscriptions set failing_since = now()
        where id = any (${textArray(failed)})
          and failing_since is null`);
      disabled.push(
        ...(await disableSubscriptions(
          tx,
          failed,
          'failing',
          sql`and failing_since < now() - ${`${Math.round(disableAfterS)} seconds`}::interval`,
        )),
      );
    }
    return disabled;
  });
}
