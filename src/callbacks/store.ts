import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { executeRows } from '../db/rows.js';
import { callbackReceipts, type JobRow, jobs, type ReceiptVerdict } from '../db/schema.js';
import type { Observation } from '../jobs/states.js';
import { applyObservations } from '../jobs/transition.js';
import { DatabaseTimeoutError } from '../errors.js';
import { jsonParam } from '../db/json.js';

/** A verified callback, ready to be stored with its receipt and applied. */
export interface ReceiptInput {
  provider: string;
  route: 'job' | 'provider';
  headers: Record<string, string>;
  raw: Uint8Array;
  sourceAddress: string | null;
  job: JobRow;
  observation: Observation | null;
  verdictOverride?: ReceiptVerdict | undefined;
  reason?: string | undefined;
  deliveryId: string | null;
  contentUrl: string | undefined;
  /** The task id the callback taught us, for a job whose submit answer has not come yet. */
  learnedTaskId: string | null;
  /** The task the callback is about, checked again on the job as locked. */
  taskId: string;
}

export interface StoredOutcome {
  verdict: ReceiptVerdict;
  jobId: string;
  status: JobRow['status'];
  /** Why, for a callback found malformed only once its job was locked. */
  reason?: string;
}

const verdictOf = { advance: 'applied', progress: 'updated', duplicate: 'duplicate', stale: 'stale' } as const;

/** Provider delivery ids already stored with a job (and not merely as unverifiable), as `provider\ndeliveryId`. */
async function seenDeliveries(tx: Tx, inputs: readonly ReceiptInput[]): Promise<Set<string>> {
  const keys = inputs.filter((i) => i.deliveryId).map((i) => ({ provider: i.provider, delivery_id: i.deliveryId }));
  if (!keys.length) return new Set();
  const rows = await executeRows<{ provider: string; delivery_id: string }>(
    tx,
    sql`select distinct r.provider, r.delivery_id
        from ${callbackReceipts} r
        join jsonb_to_recordset(${jsonParam(keys)}::jsonb) as k(provider text, delivery_id text)
          on r.provider = k.provider and r.delivery_id = k.delivery_id
        where r.job_id is not null and r.verdict <> 'unverifiable'`,
  );
  return new Set(rows.map((r) => `${r.provider}\n${r.delivery_id}`));
}

/**
 * Stores callbacks and applies them in one transaction: each receipt with its verdict, every
 * observation through `applyObservations`, a provider's repeated delivery id as a duplicate (also
 * within the batch). Outcomes come back in input order, and only after the commit.
 */
export async function storeReceipts(db: Db, inputs: readonly ReceiptInput[]): Promise<StoredOutcome[]> {
  return db.transaction(async (tx) => {
    // In job id order, like applyObservations' locks, so two batches cannot deadlock.
    for (const i of [...inputs].sort((a, b) => (a.job.id < b.job.id ? -1 : 1))) {
      if (!i.learnedTaskId) continue;
      await tx
        .update(jobs)
        .set({ providerTaskId: i.learnedTaskId })
        .where(and(eq(jobs.id, i.job.id), isNull(jobs.providerTaskId)));
    }
    const seen = await seenDeliveries(tx, inputs);
    const verdicts: (ReceiptVerdict | undefined)[] = [];
    const reasons = inputs.map((i) => i.reason ?? null);
    const toApply: { index: number; jobId: string; obs: Observation; opts: { contentUrl: string | undefined; taskId: string } }[] = [];
    for (const [index, i] of inputs.entries()) {
      const key = i.deliveryId ? `${i.provider}\n${i.deliveryId}` : null;
      if (key && seen.has(key)) {
        verdicts.push('duplicate');
        continue;
      }
      verdicts.push(i.verdictOverride);
      if (key && i.verdictOverride !== 'unverifiable') seen.add(key);
      if (i.observation) toApply.push({ index, jobId: i.job.id, obs: i.observation, opts: { contentUrl: i.contentUrl, taskId: i.taskId } });
    }
    const statuses = inputs.map((i) => i.job.status);
    const results = await applyObservations(tx, toApply);
    for (const [k, r] of results.entries()) {
      const { index } = toApply[k]!;
      if (r.taskMismatch) {
        verdicts[index] = 'malformed';
        reasons[index] = `callback is about task ${inputs[index]!.taskId}, but this job tracks ${r.job.providerTaskId}`;
      }
      verdicts[index] ??= verdictOf[r.decision.kind];
      statuses[index] = r.job.status;
    }
    // One JSON parameter rather than ten per receipt: for a batch of many, far less to build and send.
    const receipts = inputs.map((i, index) => ({
      provider: i.provider,
      job_id: i.job.id,
      route: i.route,
      delivery_id: i.deliveryId,
      verdict: verdicts[index] ?? 'ignored',
      reason: reasons[index],
      headers: i.headers,
      body: Buffer.from(i.raw).toString('base64'),
      body_size: i.raw.byteLength,
      source_address: i.sourceAddress,
    }));
    await tx.execute(sql`
      insert into ${callbackReceipts} (provider, job_id, route, delivery_id, verdict, reason, headers, body, body_size, source_address)
      select r.provider, r.job_id, r.route, r.delivery_id, r.verdict, r.reason, r.headers, decode(r.body, 'base64'), r.body_size, r.source_address
      from jsonb_to_recordset(${jsonParam(receipts)}::jsonb)
        as r(provider text, job_id text, route text, delivery_id text, verdict text, reason text, headers jsonb,
             body text, body_size int, source_address text)`);
    return inputs.map((i, index) => ({
      verdict: verdicts[index] ?? 'ignored',
      jobId: i.job.id,
      status: statuses[index]!,
      ...(verdicts[index] === 'malformed' ? { reason: reasons[index]! } : {}),
    }));
  });
}

interface Waiting {
  input: ReceiptInput;
  resolve: (o: StoredOutcome) => void;
  reject: (err: unknown) => void;
  /** Its caller was answered 503 already (deadline): not written, if not yet in a batch. */
  abandoned: boolean;
}

/**
 * Group commit for the callback path: a callback that arrives while a write is in progress waits
 * for the next one, which takes everything that queued meanwhile (up to `maxBatch`). At a trickle
 * every callback is written at once, alone; under load the batches grow, and the relay makes a
 * handful of round trips and one commit for many callbacks instead of for each. Each caller still
 * hears only after the commit that holds its receipt. A batch that fails is retried one callback
 * at a time, so one bad callback cannot fail the others.
 */
export class ReceiptWriter {
  private queue: Waiting[] = [];
  private writers = 0;

  /**
   * `concurrency` writes may be in flight at once: while one commits, the next is already being
   * written, so a callback waits for at most part of a write before its own starts.
   */
  constructor(
    private readonly db: Db,
    private readonly maxBatch = 200,
    private readonly concurrency = 2,
    private readonly maxWaiting = 5000,
  ) {}

  /**
   * Stores `input` with the next write. Past `deadlineMs` (the database stalled) the caller gets a
   * DatabaseTimeoutError — a 503, so the provider retries — and the callback is dropped unless its
   * write has begun; with too many waiting already, it is refused at once. So a stalled database
   * costs bounded memory, not a queue of every retry's body.
   */
  store(input: ReceiptInput, deadlineMs = 3000): Promise<StoredOutcome> {
    if (this.queue.length >= this.maxWaiting) {
      return Promise.reject(new DatabaseTimeoutError(`${this.maxWaiting} callbacks are already waiting for the database`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.abandoned = true;
        reject(new DatabaseTimeoutError(`storing the callback: the database did not answer within ${deadlineMs} ms`));
      }, deadlineMs);
      const waiting: Waiting = {
        input,
        abandoned: false,
        resolve: (o) => {
          clearTimeout(timer);
          resolve(o);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.queue.push(waiting);
      if (this.writers < this.concurrency) void this.drain();
    });
  }

  private async drain() {
    this.writers++;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch).filter((w) => !w.abandoned);
        if (!batch.length) continue;
        try {
          const outcomes = await storeReceipts(
            this.db,
            batch.map((w) => w.input),
          );
          batch.forEach((w, k) => w.resolve(outcomes[k]!));
        } catch (err) {
          if (batch.length === 1) {
            batch[0]!.reject(err);
            continue;
          }
          for (const w of batch) {
            try {
              w.resolve((await storeReceipts(this.db, [w.input]))[0]!);
            } catch (oneErr) {
              w.reject(oneErr);
            }
          }
        }
      }
    } finally {
      this.writers--;
    }
  }
}
