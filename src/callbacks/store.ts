import { and, eq, isNull, type SQL, sql } from 'drizzle-orm';
import type { Db, Executor } from '../db/client.js';
import { executeRows, preparedStatement, textArrayOf } from '../db/rows.js';
import { callbackReceipts, type JobRow, jobs, type ReceiptVerdict } from '../db/schema.js';
import type { Observation } from '../jobs/states.js';
import {
  applyObservations,
  planObservations,
  type TransitionResult,
  WRITE_PARAMS,
  writeCtes,
  type WriteShape,
  writeShape,
  writeValues,
} from '../jobs/transition.js';
import { jobReader, type VersionedJob } from './job-loader.js';
import { DatabaseTimeoutError } from '../errors.js';
import { jsonParam } from '../db/json.js';

/** A verified callback, ready to be stored with its receipt and applied. */
export interface ReceiptInput {
  provider: string;
  route: 'job' | 'provider';
  headers: Record<string, string>;
  raw: Uint8Array;
  sourceAddress: string | null;
  /** The job as read; with its row version, the batch may be written in one statement (`storeAtOnce`). */
  job: VersionedJob;
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
async function seenDeliveries(db: Executor, inputs: readonly ReceiptInput[]): Promise<Set<string>> {
  const keys = inputs.filter((i) => i.deliveryId).map((i) => ({ provider: i.provider, delivery_id: i.deliveryId }));
  if (!keys.length) return new Set();
  const rows = await executeRows<{ provider: string; delivery_id: string }>(
    db,
    sql`select distinct r.provider, r.delivery_id
        from ${callbackReceipts} r
        join jsonb_to_recordset(${jsonParam(keys)}::jsonb) as k(provider text, delivery_id text)
          on r.provider = k.provider and r.delivery_id = k.delivery_id
        where r.job_id is not null and r.verdict <> 'unverifiable'`,
  );
  return new Set(rows.map((r) => `${r.provider}\n${r.delivery_id}`));
}

/** A batch's callbacks sorted out before any job is touched: repeats of a delivery id, and what is left to apply. */
interface Screened {
  verdicts: (ReceiptVerdict | undefined)[];
  reasons: (string | null)[];
  toApply: { index: number; jobId: string; obs: Observation; opts: { contentUrl: string | undefined; taskId: string } }[];
}

/** A provider's repeated delivery id is a duplicate, also within the batch; the rest is applied. */
function screen(inputs: readonly ReceiptInput[], seen: Set<string>): Screened {
  const verdicts: (ReceiptVerdict | undefined)[] = [];
  const reasons = inputs.map((i) => i.reason ?? null);
  const toApply: Screened['toApply'] = [];
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
  return { verdicts, reasons, toApply };
}

/** Each callback's verdict once the transitions are known, and the receipts to insert, as one JSON parameter. */
function judge(inputs: readonly ReceiptInput[], { verdicts, reasons, toApply }: Screened, results: readonly TransitionResult[]) {
  const statuses = inputs.map((i) => i.job.status);
  for (const [k, r] of results.entries()) {
    const { index } = toApply[k]!;
    if (r.taskMismatch) {
      verdicts[index] = 'malformed';
      reasons[index] = `callback is about task ${inputs[index]!.taskId}, but this job tracks ${r.job.providerTaskId}`;
    }
    verdicts[index] ??= verdictOf[r.decision.kind];
    statuses[index] = r.job.status;
  }
  const outcomes: StoredOutcome[] = inputs.map((i, index) => ({
    verdict: verdicts[index] ?? 'ignored',
    jobId: i.job.id,
    status: statuses[index]!,
    ...(verdicts[index] === 'malformed' ? { reason: reasons[index]! } : {}),
  }));
  // One JSON parameter rather than ten per receipt: for a batch of many, far less to build and send.
  const receipts = inputs.map((i, index) => ({
    provider: i.provider,
    job_id: i.job.id,
    route: i.route,
    delivery_id: i.deliveryId,
    verdict: outcomes[index]!.verdict,
    reason: reasons[index],
    headers: i.headers,
    body: Buffer.from(i.raw).toString('base64'),
    body_size: i.raw.byteLength,
    source_address: i.sourceAddress,
  }));
  return { outcomes, receipts: jsonParam(receipts) };
}

function insertReceipts(receipts: unknown, onlyJobsIn?: SQL): SQL {
  return sql`
      insert into ${callbackReceipts} (provider, job_id, route, delivery_id, verdict, reason, headers, body, body_size, source_address)
      select r.provider, r.job_id, r.route, r.delivery_id, r.verdict, r.reason, r.headers, decode(r.body, 'base64'), r.body_size, r.source_address
      from jsonb_to_recordset(${receipts}::jsonb)
        as r(provider text, job_id text, route text, delivery_id text, verdict text, reason text, headers jsonb,
             body text, body_size int, source_address text)
      ${onlyJobsIn ? sql`where r.job_id in ${onlyJobsIn}` : sql``}`;
}

/**
 * Stores callbacks and applies them in one transaction that locks their jobs: each receipt with
 * its verdict, every observation through `applyObservations`, a provider's repeated delivery id as
 * a duplicate (also within the batch). Outcomes come back in input order, and only after the commit.
 * The general path: `storeAtOnce` takes the common case in one statement and leaves the rest here.
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
    const screened = screen(inputs, await seenDeliveries(tx, inputs));
    const results = await applyObservations(tx, screened.toApply);
    const { outcomes, receipts } = judge(inputs, screened, results);
    await tx.execute(insertReceipts(receipts));
    return outcomes;
  });
}

/**
 * The statement `storeAtOnce` sends, its text built once: `versions` (each job's id and version as
 * read), `changing` and `unchanged` (the ids that change, and the others, as JSON arrays), the
 * receipts and the writes of the plan. The ids come as arrays so the jobs are found through their
 * primary key whatever the planner guesses of the JSON's size; those that change are locked, in id
 * order, the others only checked. Returns the ids of the jobs still at the version read. One text
 * per shape of the write (`WriteShape`), and one for a batch that changes no job.
 */
const atOnceStatement = preparedStatement([...WRITE_PARAMS, 'versions', 'changing', 'unchanged', 'receipts'], (p, shape: WriteShape | 'none') => sql`
    with guard as (
      select g.id, g.version from jsonb_to_recordset(${p.versions}::jsonb) as g(id text, version text)
    ),
    locked as (
      select j.id from ${jobs} j join guard g on g.id = j.id and j.xmin::text = g.version
      where j.id = any(${textArrayOf(p.changing)})
      order by j.id for update of j
    ),
    unchanged as (
      select j.id from ${jobs} j join guard g on g.id = j.id and j.xmin::text = g.version
      where j.id = any(${textArrayOf(p.unchanged)})
    ),
    written as (select id from locked union all select id from unchanged),${
      shape === 'none' ? sql`` : sql`${writeCtes(p, shape, { onlyJobsIn: sql`(select id from locked)`, numberEvents: true })},`
    }
    stored as (${insertReceipts(p.receipts, sql`(select id from written)`)})
    select id from written`);

/**
 * The common case in one statement and one round trip, outside any transaction: the callbacks are
 * ruled on against their jobs as the loader read them, and the statement writes a job's change, its
 * events, deliveries and receipts only if the job's row is still at the version read (locking those
 * it changes, in id order). Returns the outcome of each input, or null for those whose job had
 * changed meanwhile (nothing of theirs written): they go through `storeReceipts`. Inputs must carry
 * a job version and no learned task id.
 */
export async function storeAtOnce(db: Db, inputs: readonly ReceiptInput[]): Promise<(StoredOutcome | null)[]> {
  const screened = screen(inputs, await seenDeliveries(db, inputs));
  // Each job as first read in the batch (its version is what the write checks).
  const read = new Map<string, VersionedJob>();
  for (const i of inputs) if (!read.has(i.job.id)) read.set(i.job.id, i.job);
  const plan = planObservations(new Map(read), screened.toApply, new Date());
  const { outcomes, receipts } = judge(inputs, screened, plan.results);
  const versions = [...read.values()].map((j) => ({ id: j.id, version: j.version! }));
  const writes = writeValues(plan);
  const rows = await atOnceStatement<{ id: string }>(db, {
    ...writes,
    versions: jsonParam(versions),
    changing: JSON.stringify(versions.filter((v) => plan.changes.has(v.id)).map((v) => v.id)),
    unchanged: JSON.stringify(versions.filter((v) => !plan.changes.has(v.id)).map((v) => v.id)),
    receipts,
  }, plan.changes.size ? writeShape(writes) : 'none');
  const written = new Set(rows.map((r) => r.id));
  return inputs.map((i, index) => (written.has(i.job.id) ? outcomes[index]! : null));
}

/**
 * Stores a batch: what can go in one statement does (`storeAtOnce`), the rest — callbacks whose job
 * changed since it was read, or that teach a job its task id — in one locking transaction.
 */
export async function storeBatch(db: Db, inputs: readonly ReceiptInput[]): Promise<StoredOutcome[]> {
  const outcomes: (StoredOutcome | null)[] = inputs.map(() => null);
  const quick = inputs.flatMap((i, index) => (i.job.version && !i.learnedTaskId ? [index] : []));
  if (quick.length) {
    const done = await storeAtOnce(
      db,
      quick.map((index) => inputs[index]!),
    );
    done.forEach((o, k) => (outcomes[quick[k]!] = o));
  }
  const rest = inputs.flatMap((_, index) => (outcomes[index] ? [] : [index]));
  if (rest.length) {
    const done = await storeReceipts(
      db,
      rest.map((index) => inputs[index]!),
    );
    done.forEach((o, k) => (outcomes[rest[k]!] = o));
  }
  return outcomes as StoredOutcome[];
}

/**
 * A callback whose job the writer reads itself, in the batch it writes: `complete` turns the job as
 * read (undefined when there is none) into the input to store, or throws to refuse the callback.
 * One read per batch instead of a separate queue of reads before it.
 */
export interface UnreadJobInput {
  jobId: string;
  complete(job: VersionedJob | undefined): ReceiptInput;
}

interface Waiting {
  input: ReceiptInput | null;
  unread?: UnreadJobInput;
  resolve: (o: StoredOutcome) => void;
  reject: (err: unknown) => void;
  /** Its caller was answered 503 already (deadline): not written, if not yet in a batch. */
  abandoned: boolean;
  /** `performance.now()` when it was queued. */
  queuedAt: number;
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
  /** Armed while callbacks wait behind a running write: see `spillAfterMs`. */
  private spillTimer: NodeJS.Timeout | null = null;

  private readonly readJobs: (ids: readonly string[]) => Promise<VersionedJob[]>;

  /**
   * One write starts as soon as anything waits; a second runs beside it only once `spillAt`
   * callbacks are waiting, or once the oldest waiting one has waited `spillAfterMs` (the running
   * write is slow, or retrying a failed batch one callback at a time). Under load the batches grow
   * instead of splitting into many small concurrent ones, and every statement PostgreSQL runs is
   * paid once per batch (on the ingest bench: batches of about 20 instead of 10, and a fifth less
   * PostgreSQL CPU per callback, at the same throughput); at a trickle a callback is still written
   * at once.
   */
  constructor(
    private readonly db: Db,
    private readonly maxBatch = 200,
    private readonly concurrency = 2,
    private readonly spillAt = 16,
    private readonly spillAfterMs = 50,
    private readonly maxWaiting = 5000,
  ) {
    this.readJobs = jobReader(db);
  }

  /**
   * Stores `input` with the next write. Past `deadlineMs` (the database stalled) the caller gets a
   * DatabaseTimeoutError — a 503, so the provider retries — and the callback is dropped unless its
   * write has begun; with too many waiting already, it is refused at once. So a stalled database
   * costs bounded memory, not a queue of every retry's body.
   */
  store(input: ReceiptInput | UnreadJobInput, deadlineMs = 3000): Promise<StoredOutcome> {
    if (this.queue.length >= this.maxWaiting) {
      return Promise.reject(new DatabaseTimeoutError(`${this.maxWaiting} callbacks are already waiting for the database`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.abandoned = true;
        reject(new DatabaseTimeoutError(`storing the callback: the database did not answer within ${deadlineMs} ms`));
      }, deadlineMs);
      const waiting: Waiting = {
        ...('complete' in input ? { input: null, unread: input } : { input }),
        abandoned: false,
        queuedAt: performance.now(),
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
      if (this.writers === 0 || (this.writers < this.concurrency && this.queue.length >= this.spillAt)) void this.drain();
      else if (this.writers < this.concurrency) this.armSpill(this.spillAfterMs);
    });
  }

  /** Starts another write in `ms` if the oldest callback waiting by then has waited `spillAfterMs`. */
  private armSpill(ms: number) {
    if (this.spillTimer) return;
    this.spillTimer = setTimeout(() => {
      this.spillTimer = null;
      const oldest = this.queue[0];
      if (!oldest || this.writers >= this.concurrency) return;
      const waited = performance.now() - oldest.queuedAt;
      if (waited >= this.spillAfterMs) void this.drain();
      else this.armSpill(this.spillAfterMs - waited);
    }, ms);
    this.spillTimer.unref();
  }

  /**
   * Reads the jobs of the batch's unread inputs in one query and completes them; those refused, or
   * whose read failed, are answered at once and leave the batch.
   */
  private async completeInputs(batch: Waiting[]): Promise<Waiting[]> {
    const ids = [...new Set(batch.flatMap((w) => (w.unread ? [w.unread.jobId] : [])))];
    let byId: Map<string, VersionedJob>;
    try {
      byId = new Map((await this.readJobs(ids)).map((j) => [j.id, j]));
    } catch (err) {
      for (const w of batch) if (w.unread) w.reject(err);
      return batch.filter((w) => !w.unread);
    }
    return batch.filter((w) => {
      if (!w.unread) return true;
      try {
        w.input = w.unread.complete(byId.get(w.unread.jobId));
        return true;
      } catch (err) {
        w.reject(err);
        return false;
      }
    });
  }

  private async drain() {
    this.writers++;
    try {
      while (this.queue.length) {
        let batch = this.queue.splice(0, this.maxBatch).filter((w) => !w.abandoned);
        if (batch.some((w) => w.unread)) batch = await this.completeInputs(batch);
        if (!batch.length) continue;
        try {
          const outcomes = await storeBatch(
            this.db,
            batch.map((w) => w.input!),
          );
          batch.forEach((w, k) => w.resolve(outcomes[k]!));
        } catch (err) {
          if (batch.length === 1) {
            batch[0]!.reject(err);
            continue;
          }
          for (const w of batch) {
            try {
              w.resolve((await storeBatch(this.db, [w.input!]))[0]!);
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
