import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { Notifier } from '../db/notify.js';
import { type JobRow, jobs } from '../db/schema.js';
import { getJob } from './queries.js';
import { isTerminal } from './states.js';

/** The longest `GET /v1/jobs/{id}?wait=` may hold a request, in seconds. */
export const MAX_WAIT_S = 60;
const SWEEP_MS = 5000;

export interface WaitContext {
  db: Db;
  notifier: Notifier;
}

interface Waiter {
  settle(job: JobRow | null): void;
}

/** The waiters of one job, and whether a re-read of it is running or wanted. */
interface Watch {
  waiters: Set<Waiter>;
  reading: boolean;
  stale: boolean;
}

/**
 * Every long-poll of one process, on one `relay_events` subscription (one LISTEN on the server).
 * A notification for a watched job triggers one re-read of that job for all of its waiters; other
 * jobs' notifications cost a map lookup. A waiter is a timer and a few small objects, nothing more.
 */
class JobWaits {
  private readonly watches = new Map<string, Watch>();
  /** In-flight reads for waiters that timed out, shared by those of one job that time out together. */
  private readonly reads = new Map<string, Promise<JobRow>>();
  readonly listening: Promise<void>;
  /** While anyone waits, every watched job is re-read this often: a lost notification costs at most this long. */
  private sweep: NodeJS.Timeout | null = null;

  constructor(private readonly db: Db, notifier: Notifier) {
    // The payload is the job ids one statement gave events, separated by spaces.
    notifier.subscribe('relay_events', (jobIds) => {
      for (const jobId of jobIds.split(' ')) this.changed(jobId);
    });
    this.listening = notifier.listening('relay_events');
  }

  add(jobId: string, waiter: Waiter) {
    let watch = this.watches.get(jobId);
    if (!watch) {
      watch = { waiters: new Set(), reading: false, stale: false };
      this.watches.set(jobId, watch);
    }
    watch.waiters.add(waiter);
    if (!this.sweep) {
      this.sweep = setInterval(() => {
        for (const id of this.watches.keys()) this.changed(id);
      }, SWEEP_MS);
      this.sweep.unref();
    }
  }

  remove(jobId: string, waiter: Waiter) {
    const watch = this.watches.get(jobId);
    if (!watch) return;
    watch.waiters.delete(waiter);
    if (watch.waiters.size === 0) this.watches.delete(jobId);
    if (this.watches.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  get size(): number {
    let n = 0;
    for (const watch of this.watches.values()) n += watch.waiters.size;
    return n;
  }

  /** The job may have changed: read it again (once, however many ask meanwhile) and release its waiters if it is terminal. */
  changed(jobId: string) {
    const watch = this.watches.get(jobId);
    if (!watch) return;
    watch.stale = true;
    if (!watch.reading) void this.reread(jobId, watch);
  }

  private async reread(jobId: string, watch: Watch) {
    watch.reading = true;
    try {
      while (watch.stale && watch.waiters.size > 0) {
        watch.stale = false;
        const [job] = await this.db.select().from(jobs).where(eq(jobs.id, jobId));
        if (!job || isTerminal(job.status)) {
          for (const waiter of [...watch.waiters]) waiter.settle(job ?? null);
        }
      }
    } catch {
      // The database may be down: the waiters fall back to their timeouts.
    } finally {
      watch.reading = false;
    }
  }

  current(jobId: string): Promise<JobRow> {
    let read = this.reads.get(jobId);
    if (!read) {
      read = getJob(this.db, jobId).finally(() => this.reads.delete(jobId));
      this.reads.set(jobId, read);
    }
    return read;
  }
}

const registries = new WeakMap<Notifier, JobWaits>();

function waitsFor(ctx: WaitContext): JobWaits {
  let waits = registries.get(ctx.notifier);
  if (!waits) {
    waits = new JobWaits(ctx.db, ctx.notifier);
    registries.set(ctx.notifier, waits);
  }
  return waits;
}

/** How many requests are waiting on this notifier's process (for metrics and tests). */
export function waitingRequests(notifier: Notifier): number {
  return registries.get(notifier)?.size ?? 0;
}

/**
 * The job at once if it is terminal; otherwise as soon as it becomes terminal (woken by the
 * `relay_events` NOTIFY its event's commit sends, from any replica), or as it is after `waitMs`
 * or when `signal` aborts (the client left).
 */
export async function waitForTerminalJob(ctx: WaitContext, jobId: string, waitMs: number, signal?: AbortSignal): Promise<JobRow> {
  const job = await getJob(ctx.db, jobId);
  if (isTerminal(job.status) || waitMs <= 0 || signal?.aborted) return job;
  // The job read is not kept while waiting: a waiter is a timer and a few small objects.
  return waitThenRead(waitsFor(ctx), jobId, waitMs, signal);
}

async function waitThenRead(waits: JobWaits, jobId: string, waitMs: number, signal?: AbortSignal): Promise<JobRow> {
  const woken = await new Promise<JobRow | null>((resolve) => {
    let done = false;
    const waiter: Waiter = { settle: finish };
    const stop = () => finish(null);
    const timer = setTimeout(stop, waitMs);
    function finish(job: JobRow | null) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
      waits.remove(jobId, waiter);
      resolve(job);
    }
    signal?.addEventListener('abort', stop, { once: true });
    waits.add(jobId, waiter);
    // A commit between the first read and now notified nobody about this waiter: look again once
    // the LISTEN is surely in effect.
    void waits.listening.then(() => waits.changed(jobId));
  });
  return woken ?? waits.current(jobId);
}
