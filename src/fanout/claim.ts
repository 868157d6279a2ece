import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { executeRows } from '../db/rows.js';
import { fromNow } from '../jobs/claim.js';

/** A claimed delivery with everything needed to send it. */
export interface ClaimedDelivery {
  id: string;
  /** The fencing token: the outcome is recorded only if no one has claimed the delivery since. */
  claims: number;
  attempts: number;
  subscriptionId: string | null;
  /** Where it goes now: the subscription's current URL, or the job's notify_url. */
  url: string;
  /** What fairness is counted by: the subscription, or the notify_url's origin. */
  target: string;
  /** Newest first; a rotated-out secret while its grace period lasts. Null for notify_url deliveries. */
  secrets: string[] | null;
  eventId: string;
  eventType: string;
  sequence: number;
  eventCreatedAt: string;
  data: Record<string, unknown>;
}

export interface ClaimOptions {
  limit: number;
  /** At most this many per target in one claim… */
  perTarget: number;
  /** …or, for the targets named here, this many (what is left of a lower or partly used cap). */
  allowance: Readonly<Record<string, number>>;
  leaseMs: number;
}

/** SQL for a delivery's fairness key; must match `ClaimedDelivery.target`. */
const targetOf = (d: string) =>
  sql.raw(`coalesce(${d}.subscription_id, 'url:' || substring(${d}.url from '^[a-zA-Z]+://[^/?#]+'))`);

/** How far past the oldest due delivery a claim looks for other targets' work. */
const SCAN_FACTOR = 8;

interface ClaimedRow {
  id: string;
  claims: number;
  attempts: number;
  subscription_id: string | null;
  url: string;
  target: string;
  secret: string | null;
  previous_secret: string | null;
  event_id: string;
  event_type: string;
  sequence: number;
  event_created_at: string;
  data: string;
}

/**
 * Claims due deliveries in one statement: the oldest due ones (of enabled subscriptions, and of
 * targets with allowance left) are locked with `FOR UPDATE SKIP LOCKED`, at most each target's
 * allowance, so a subscriber with a deep backlog cannot fill the batch; they are leased and counted (`claims`), and
 * returned joined with their event and subscription. The locking CTE is evaluated once, which an
 * `UPDATE … WHERE id IN (SELECT … SKIP LOCKED)` does not promise.
 */
export async function claimDueDeliveries(db: Db, opts: ClaimOptions): Promise<ClaimedDelivery[]> {
  if (opts.limit <= 0) return [];
  const allowance = JSON.stringify(opts.allowance);
  const rows = await executeRows<ClaimedRow>(
    db,
    sql`
    with candidates as (
      select d.id, ${targetOf('d')} as target, d.next_attempt_at
      from deliveries d
      where d.status = 'pending' and d.next_attempt_at <= now()
        and (d.lease_until is null or d.lease_until <= now())
        and (d.subscription_id is null
             or exists (select 1 from subscriptions s where s.id = d.subscription_id and s.disabled_at is null))
        and coalesce((${allowance}::jsonb ->> ${targetOf('d')})::int, 1) > 0
      order by d.next_attempt_at
      limit ${opts.limit * SCAN_FACTOR}
    ),
    ranked as (
      select id, target, row_number() over (partition by target order by next_attempt_at) as rn from candidates
    ),
    picked as materialized (
      select d.id from deliveries d join ranked r on r.id = d.id
      where r.rn <= coalesce((${allowance}::jsonb ->> r.target)::int, ${opts.perTarget}) and d.status = 'pending'
        and (d.lease_until is null or d.lease_until <= now())
        -- Re-checked on the row as locked: another worker may have sent and rescheduled it meanwhile.
        and d.next_attempt_at <= now()
        and (d.subscription_id is null
             or exists (select 1 from subscriptions s where s.id = d.subscription_id and s.disabled_at is null))
      order by d.next_attempt_at
      limit ${opts.limit}
      for update of d skip locked
    ),
    claimed as (
      update deliveries d set lease_until = ${fromNow(opts.leaseMs)}, claims = d.claims + 1
      from picked where d.id = picked.id
      returning d.id, d.claims, d.attempts, d.subscription_id, d.url, d.event_id, ${targetOf('d')} as target
    )
    select c.id, c.claims, c.attempts, c.subscription_id, coalesce(s.url, c.url) as url, c.target,
           s.secret,
           case when s.previous_secret_expires_at > now() then s.previous_secret end as previous_secret,
           e.event_id, e.type as event_type, e.sequence,
           to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as event_created_at,
           e.data::text as data
    from claimed c
    join job_events e on e.event_id = c.event_id
    left join subscriptions s on s.id = c.subscription_id`,
  );
  return rows.map((r) => ({
    id: r.id,
    claims: Number(r.claims),
    attempts: Number(r.attempts),
    subscriptionId: r.subscription_id,
    url: r.url,
    target: r.target,
    secrets: r.secret ? [r.secret, ...(r.previous_secret ? [r.previous_secret] : [])] : null,
    eventId: r.event_id,
    eventType: r.event_type,
    sequence: Number(r.sequence),
    eventCreatedAt: r.event_created_at,
    data: JSON.parse(r.data) as Record<string, unknown>,
  }));
}

/** Milliseconds until the next pending delivery is due (≤ 0: now), or null when none is waiting. */
export async function msUntilNextDelivery(db: Db): Promise<number | null> {
  const [row] = await executeRows<{ ms: string | number | null }>(
    db,
    sql`select extract(epoch from (min(d.next_attempt_at) - now())) * 1000 as ms
        from deliveries d where d.status = 'pending' and d.next_attempt_at is not null
          and (d.lease_until is null or d.lease_until <= now())
          -- As the claim sees it: a disabled subscription's deliveries are not due.
          and (d.subscription_id is null
               or exists (select 1 from subscriptions s where s.id = d.subscription_id and s.disabled_at is null))`,
  );
  return row?.ms === null || row?.ms === undefined ? null : Number(row.ms);
}

/** Hands deliveries back (still this worker's, by `claims`) without counting an attempt: due again at once. */
export async function releaseLeases(db: Db, claimed: readonly Pick<ClaimedDelivery, 'id' | 'claims'>[]): Promise<void> {
  if (!claimed.length) return;
  await db.execute(sql`
    update deliveries d set lease_until = null
    from jsonb_to_recordset(${JSON.stringify(claimed.map((c) => ({ id: c.id, claims: c.claims })))}::jsonb) as r(id text, claims int)
    where d.id = r.id and d.claims = r.claims`);
}
