import { and, eq, inArray, isNotNull, isNull, lte, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { Notifier } from '../db/notify.js';
import { type JobRow, jobs } from '../db/schema.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { ProviderBudgets } from '../providers/budget.js';
import type { Providers } from '../providers/index.js';
import { ProviderCallError, type ProviderAdapter } from '../providers/types.js';
import { retryDelayMs } from './backoff.js';
import { relayContentUrl } from './content.js';
import { nextPollDelayMs } from './schedule.js';
import { decide, type Observation } from './states.js';
import { applyObservation } from './transition.js';
import { claimDueJobs, fromNow } from './claim.js';
import { startLoop, type Loop } from './loop.js';

export interface PollContext {
  db: Db;
  providers: Providers;
  notifier: Notifier;
  publicBaseUrl: string;
  log: Logger;
  metrics: Metrics;
}

export interface PollWorkerOptions {
  /** Jobs claimed per provider per batch. */
  batchSize?: number;
  maxInFlight?: number;
  leaseMs?: number;
  idleMs?: number;
}

/** `task_not_found` this many times in a row fails the job: a task the provider forgot will not come back. */
export const NOT_FOUND_LIMIT = 3;

const pollable = ['submitted', 'processing', 'expired'] as const;

/**
 * Claims one provider's due jobs with `FOR UPDATE SKIP LOCKED` and a lease; a lease that ran out
 * (its worker died) makes the job claimable again.
 */
export async function claimDuePolls(db: Db, provider: string, limit: number, leaseMs: number): Promise<JobRow[]> {
  const where = and(eq(jobs.provider, provider), inArray(jobs.status, [...pollable]), isNotNull(jobs.providerTaskId));
  return claimDueJobs(db, where, limit, leaseMs, 'polls');
}

/** Milliseconds until the provider's next due poll (≤ 0: due now), or null when none is scheduled. */
async function msUntilNextPoll(db: Db, provider: string): Promise<number | null> {
  const [row] = await db
    .select({ ms: sql<number | null>`extract(epoch from (min(${jobs.dueAt}) - now())) * 1000` })
    .from(jobs)
    .where(
      and(
        eq(jobs.provider, provider),
        inArray(jobs.status, [...pollable]),
        isNotNull(jobs.dueAt),
        // A job being polled right now is not due: its worker reschedules it.
        or(isNull(jobs.leaseUntil), lte(jobs.leaseUntil, sql`now()`)),
      ),
    );
  return row?.ms === null || row?.ms === undefined ? null : Number(row.ms);
}

async function reschedule(db: Db, jobId: string, delayMs: number | null, patch: Partial<typeof jobs.$inferInsert> = {}) {
  await db
    .update(jobs)
    .set({
      ...patch,
      leaseUntil: null,
      dueAt: delayMs === null ? null : fromNow(delayMs),
    })
    .where(eq(jobs.id, jobId));
}

function ageMs(job: JobRow, now: number): number {
  return now - (job.submittedAt ?? job.createdAt).getTime();
}

/** Expired jobs are still asked, slowly, for as long again as they were given, so a late result lands. */
function latePollDelay(adapter: ProviderAdapter, job: JobRow, now: number): number | null {
  const { max_age_s, max_interval_s } = adapter.config.poll;
  return ageMs(job, now) < 2 * max_age_s * 1000 ? max_interval_s * 1000 : null;
}

/**
 * One poll of one claimed job: the answer goes through the same transition as a callback; then the
 * job is scheduled again (or not, once final). Provider trouble is kept to the job (5xx, network:
 * back off) or the provider (429: every replica pauses), and `task_not_found` repeated fails it.
 */
export async function pollClaimed(
  ctx: PollContext,
  adapter: ProviderAdapter,
  job: JobRow,
  budgets: ProviderBudgets,
  fairShareMs = 0,
): Promise<void> {
  const provider = job.provider;
  let obs: Observation | null;
  try {
    obs = await adapter.fetchStatus(job.providerTaskId!);
  } catch (err) {
    if (!(err instanceof ProviderCallError)) throw err;
    const f = err.failure;
    const now = Date.now();
    if (f.status === 429) {
      ctx.metrics.polls.inc({ provider, outcome: 'rate_limited' });
      const wait = retryDelayMs(1, f.retryAfterMs);
      await budgets.pause(provider, 'status', new Date(now + wait));
      return reschedule(ctx.db, job.id, wait, { polls: job.polls - 1 });
    }
    if (f.status === 404) {
      ctx.metrics.polls.inc({ provider, outcome: 'not_found' });
      if (job.notFoundCount + 1 >= NOT_FOUND_LIMIT) {
        await ctx.db.transaction(async (tx) => {
          await tx.update(jobs).set({ notFoundCount: job.notFoundCount + 1 }).where(eq(jobs.id, job.id));
          await applyObservation(tx, job.id, {
            status: 'failed',
            error: {
              code: 'task_not_found',
              message: `the provider answered "${f.code}" to ${NOT_FOUND_LIMIT} status requests in a row: ${f.message}`,
              source: 'provider',
            },
          });
        });
        return;
      }
      return reschedule(ctx.db, job.id, adapter.config.poll.interval_s * 1000, { notFoundCount: job.notFoundCount + 1 });
    }
    ctx.metrics.polls.inc({ provider, outcome: 'error' });
    ctx.log.warn({ jobId: job.id, provider, code: f.code, status: f.status }, 'status poll failed');
    if (await expireIfDue(ctx, adapter, job, now)) return;
    const delay = Math.min(retryDelayMs(job.pollFailures + 1), adapter.config.poll.max_interval_s * 1000);
    return reschedule(ctx.db, job.id, delay, { pollFailures: job.pollFailures + 1 });
  }

  const now = Date.now();
  ctx.metrics.polls.inc({ provider, outcome: obs ? obs.status : 'no_change' });
  if (!(obs !== null && decide(job, obs).kind === 'advance')) {
    // Most polls change nothing but progress: one UPDATE, guarded so that a callback that moved the
    // job meanwhile is not overwritten (then the transaction below runs instead).
    // An expired job is only asked slowly, and not forever (see latePollDelay).
    const next =
      job.status === 'expired'
        ? { delayMs: latePollDelay(adapter, job, now), patch: {} }
        : scheduleAfter(adapter, job, obs, now, fairShareMs);
    const progress = obs?.progress ?? null;
    const updated = await ctx.db
      .update(jobs)
      .set({
        ...next.patch,
        ...(progress !== null ? { progress: sql`greatest(coalesce(${jobs.progress}, 0), ${progress})` } : {}),
        leaseUntil: null,
        dueAt: next.delayMs === null ? null : fromNow(next.delayMs),
      })
      .where(and(eq(jobs.id, job.id), eq(jobs.status, job.status)))
      .returning({ id: jobs.id });
    if (updated.length) {
      await expireIfDue(ctx, adapter, job, now);
      return;
    }
  }

  // The job moves (or was moved meanwhile): apply and schedule in one transaction.
  const after = await ctx.db.transaction(async (tx) => {
    const current = obs
      ? (await applyObservation(tx, job.id, obs, { contentUrl: relayContentUrl(adapter, ctx.publicBaseUrl, job.id) })).job
      : job;
    if (current.status === 'succeeded' || current.status === 'failed' || current.status === 'canceled') return current;
    const next = current.status === 'expired' ? { delayMs: latePollDelay(adapter, current, now), patch: {} } : scheduleAfter(adapter, job, obs, now, fairShareMs);
    await tx
      .update(jobs)
      .set({
        ...next.patch,
        leaseUntil: null,
        dueAt: next.delayMs === null ? null : fromNow(next.delayMs),
      })
      // Guarded like the fast path: a job a callback finished meanwhile keeps its cleared schedule.
      .where(and(eq(jobs.id, job.id), eq(jobs.status, current.status)));
    return current;
  });
  await expireIfDue(ctx, adapter, after, now);
}

/** Running jobs per provider, refreshed every few seconds, for each job's fair share of the status budget. */
class RunningCounts {
  private readonly counts = new Map<string, { n: number; at: number }>();
  constructor(private readonly db: Db) {}

  async fairShareMs(adapter: ProviderAdapter): Promise<number> {
    const provider = adapter.config.name;
    let entry = this.counts.get(provider);
    if (!entry || Date.now() - entry.at > 5000) {
      const [row] = await this.db
        .select({ n: sql<number>`count(*)::int` })
        .from(jobs)
        .where(and(eq(jobs.provider, provider), inArray(jobs.status, ['submitted', 'processing']), isNotNull(jobs.dueAt)));
      entry = { n: Number(row?.n ?? 0), at: Date.now() };
      this.counts.set(provider, entry);
    }
    return (entry.n / (adapter.config.rate_limit.status_per_min / 60)) * 1000;
  }
}

/** The next poll's delay and the progress samples to keep, after a poll that found the job still running. */
function scheduleAfter(adapter: ProviderAdapter, job: JobRow, obs: Observation | null, now: number, fairShareMs: number) {
  const progress = typeof obs?.progress === 'number' ? obs.progress : null;
  // The first non-zero progress seen is the far end of the baseline the finishing time is estimated from.
  const keepBase = job.progressBase !== null && job.progressBaseAt !== null && progress !== null && progress >= job.progressBase;
  const base = keepBase
    ? { progressBase: job.progressBase, progressBaseAt: job.progressBaseAt }
    : progress
      ? { progressBase: progress, progressBaseAt: new Date(now) }
      : { progressBase: null, progressBaseAt: null };
  const delayMs = nextPollDelayMs(
    {
      now,
      submittedAt: (job.submittedAt ?? job.createdAt).getTime(),
      polls: job.polls,
      callbacks: adapter.config.callbacks,
      progress,
      progressAt: progress === null ? null : now,
      progressBase: base.progressBase,
      progressBaseAt: base.progressBaseAt?.getTime() ?? null,
      fairShareMs,
    },
    adapter.config.poll,
  );
  return {
    delayMs,
    patch: { pollFailures: 0, notFoundCount: 0, progressAt: progress === null ? null : new Date(now), ...base },
  };
}

/** A job older than `max_age_s` without a final answer becomes `expired` (a later answer still settles it). */
async function expireIfDue(ctx: PollContext, adapter: ProviderAdapter, job: JobRow, now: number): Promise<boolean> {
  const running = job.status === 'submitted' || job.status === 'processing';
  if (!running || ageMs(job, now) < adapter.config.poll.max_age_s * 1000) return false;
  await ctx.db.transaction((tx) =>
    applyObservation(tx, job.id, {
      status: 'expired',
      error: {
        code: 'expired',
        message: `no final answer from the provider within max_age_s (${adapter.config.poll.max_age_s} s); a late one is still accepted`,
        source: 'relay',
      },
    }),
  );
  await reschedule(ctx.db, job.id, latePollDelay(adapter, job, now));
  return true;
}

/**
 * The background loop that asks providers about jobs that are due: per provider, as many as its
 * shared status budget allows right now; the rest wait for their turn.
 */
export function startPollWorker(
  ctx: PollContext,
  opts: PollWorkerOptions = {},
): Loop & { runOnce(): Promise<{ handled: number; nextInMs: number | null }> } {
  const batchSize = opts.batchSize ?? 50;
  /** Polls in flight per provider: a slow provider fills its own slots, not the others'. */
  const maxInFlight = opts.maxInFlight ?? 64;
  const budgets = new ProviderBudgets(ctx.db);
  const running = new RunningCounts(ctx.db);
  const inFlight = new Map<string, Set<Promise<void>>>();
  let loop: Loop | undefined;

  const runOnce = async () => {
    let handled = 0;
    let nextInMs = null as number | null;
    const later = (ms: number) => {
      nextInMs = nextInMs === null ? ms : Math.min(nextInMs, ms);
    };
    for (const adapter of ctx.providers.values()) {
      const provider = adapter.config.name;
      const slots = inFlight.get(provider) ?? new Set<Promise<void>>();
      inFlight.set(provider, slots);
      const room = Math.min(batchSize, maxInFlight - slots.size);
      if (room <= 0) continue; // a finishing poll wakes the loop
      const dueInMs = await msUntilNextPoll(ctx.db, provider);
      if (dueInMs === null) continue;
      if (dueInMs > 0) {
        later(dueInMs);
        continue;
      }
      const perMin = adapter.config.rate_limit.status_per_min;
      const grant = await budgets.take(provider, 'status', perMin, room);
      if (!grant.granted) {
        ctx.metrics.rateLimitWaits.inc({ provider, kind: 'status' });
        later(grant.waitMs);
        continue;
      }
      // Long enough to fetch and record one answer; a worker that died frees its jobs this soon after.
      const leaseMs = opts.leaseMs ?? adapter.config.timeout_s * 2000 + 5000;
      const claimed = await claimDuePolls(ctx.db, provider, grant.granted, leaseMs);
      await budgets.giveBack(provider, 'status', perMin, grant.granted - claimed.length);
      const fairShareMs = claimed.length ? await running.fairShareMs(adapter) : 0;
      for (const job of claimed) {
        // Not awaited: answers come back at their own pace, and each freed slot is refilled at once.
        const p: Promise<void> = pollClaimed(ctx, adapter, job, budgets, fairShareMs)
          .catch((err) => ctx.log.error({ err, jobId: job.id }, 'poll could not be recorded; the lease will expire and it is polled again'))
          .finally(() => {
            slots.delete(p);
            loop?.wake();
          });
        slots.add(p);
      }
      handled += claimed.length;
    }
    return { handled, nextInMs };
  };

  loop = startLoop({
    name: 'poll',
    runOnce,
    notifier: ctx.notifier,
    channel: 'relay_polls',
    idleMs: opts.idleMs ?? 1000,
    log: ctx.log,
  });
  const started = loop;
  return {
    wake: started.wake,
    runOnce,
    async stop() {
      await started.stop();
      // Polls already sent are answered and recorded before the worker counts as stopped.
      await Promise.all([...inFlight.values()].flatMap((set) => [...set]));
    },
  };
}
