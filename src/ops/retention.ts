import { type SQL, sql } from 'drizzle-orm';
import type { RetentionConfig } from '../config.js';
import type { Db } from '../db/client.js';
import { executeRows } from '../db/rows.js';
import type { Logger } from './logger.js';

export interface PruneCounts {
  receipts: number;
  deliveries: number;
  attempts: number;
  events: number;
}

const ageOf = (days: number) => sql`now() - ${`${days} days`}::interval`;

/**
 * Deletes the rows `pick` selects (ids, oldest first) `batch` at a time, each batch its own short
 * statement: no lock is held for longer than one batch takes, and rows another replica is deleting
 * are skipped rather than waited for. Returns how many went.
 */
async function pruneInBatches(db: Db, table: SQL, pick: SQL, batch: number, pause: () => Promise<void>): Promise<number> {
  let total = 0;
  for (;;) {
    const gone = await executeRows<{ n: number | string }>(
      db,
      sql`with doomed as materialized (${pick} limit ${batch} for update skip locked),
               deleted as (delete from ${table} where id in (select id from doomed) returning 1)
          select count(*) as n from deleted`,
    );
    const n = Number(gone[0]?.n ?? 0);
    total += n;
    if (n < batch) return total;
    await pause();
  }
}

/**
 * One pass of retention: stored callbacks older than `receipts_days`; finished deliveries (with their
 * attempts) older than `deliveries_days`; events older than `events_days` of jobs that are final and
 * have no delivery still pending (their deliveries go with them). `null` keeps a kind forever.
 */
export async function pruneOnce(db: Db, cfg: RetentionConfig, opts: { batch?: number; pauseMs?: number } = {}): Promise<PruneCounts> {
  const batch = opts.batch ?? 1000;
  const pause = () => new Promise<void>((r) => setTimeout(r, opts.pauseMs ?? 20));
  const counts: PruneCounts = { receipts: 0, deliveries: 0, attempts: 0, events: 0 };
  const prune = (table: string, pick: SQL) => pruneInBatches(db, sql`${sql.identifier(table)}`, pick, batch, pause);
  if (cfg.receipts_days !== null) {
    counts.receipts = await prune('callback_receipts', sql`select id from callback_receipts where received_at < ${ageOf(cfg.receipts_days)} order by received_at`);
  }
  if (cfg.deliveries_days !== null) {
    // Attempts first (their own index), then the finished deliveries, whose remaining attempts cascade.
    counts.attempts = await prune('delivery_attempts', sql`select id from delivery_attempts where started_at < ${ageOf(cfg.deliveries_days)} order by started_at`);
    counts.deliveries = await prune('deliveries', sql`select id from deliveries where created_at < ${ageOf(cfg.deliveries_days)} and status <> 'pending' order by created_at`);
  }
  if (cfg.events_days !== null) {
    counts.events = await prune('job_events', sql`select e.id from job_events e
          where e.created_at < ${ageOf(cfg.events_days)}
            and exists (select 1 from jobs j where j.id = e.job_id and j.status in ('succeeded', 'failed', 'canceled', 'expired'))
            and not exists (select 1 from deliveries d where d.event_id = e.event_id and d.status = 'pending')
          order by e.created_at`);
  }
  return counts;
}

export interface Retention {
  stop(): Promise<void>;
}

/** Runs `pruneOnce` a minute after start and then every `everyMs` (an hour), logging what went. */
export function startRetention(opts: { db: Db; config: RetentionConfig; log: Logger; everyMs?: number; onPruned?: (c: PruneCounts) => void }): Retention {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;
  const run = () => {
    running = pruneOnce(opts.db, opts.config)
      .then((counts) => {
        opts.onPruned?.(counts);
        if (counts.receipts + counts.deliveries + counts.attempts + counts.events > 0) opts.log.info({ pruned: counts }, 'retention');
      })
      .catch((err) => opts.log.warn({ err }, 'retention pass failed; the next one will try again'))
      .finally(() => {
        running = null;
        if (!stopped) timer = setTimeout(run, opts.everyMs ?? 3600_000);
      });
  };
  timer = setTimeout(run, 60_000);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
