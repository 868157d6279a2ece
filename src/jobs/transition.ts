import { asc, inArray, type SQL, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { preparedStatement } from '../db/rows.js';
import { jsonbSafe, jsonParam } from '../db/json.js';
import { type EventRow, type JobRow, jobEvents, jobs } from '../db/schema.js';
import { outboxCtes, type OutboxValues, outboxValues } from '../fanout/outbox.js';
import { newId } from '../ids.js';
import { type Decision, decide, eventTypeFor, isTerminal, type Observation } from './states.js';
import { jobView } from './view.js';

export interface TransitionResult {
  decision: Decision;
  /** The job right after this observation. */
  job: JobRow;
  /** The event appended, when the job moved. */
  event: EventRow | null;
  /** The job, as locked, tracks another provider task than the observation is about: nothing applied. */
  taskMismatch?: true;
}

export class JobNotFoundError extends Error {
  override name = 'JobNotFoundError';
}

export interface ApplyOptions {
  /**
   * For providers whose videos need their key to download: the relay's own content URL, which
   * replaces the provider's URLs in the job's result.
   */
  contentUrl?: string | undefined;
  /**
   * The provider task the observation is about. Checked on the row as locked: a job whose submit
   * answer named another task meanwhile is left alone.
   */
  taskId?: string | undefined;
}

export interface ObservationItem {
  jobId: string;
  obs: Observation;
  opts?: ApplyOptions;
}

/** How a job's row changes: what `decide` allowed, worked out on the row as it stands. */
export interface Change {
  job: JobRow;
  /** Due time and lease cleared: nothing more to ask the provider (a final state other than expired). */
  clearSchedule: boolean;
  setResult: boolean;
  setError: boolean;
}

/** The job after `obs`, as `decide` allows it; null when nothing changes. Pure. */
function nextState(current: JobRow, obs: Observation, decision: Decision, opts: ApplyOptions, now: Date) {
  if (decision.kind === 'progress') {
    return { job: { ...current, progress: decision.progress, updatedAt: now }, clearSchedule: false, setResult: false, setError: false };
  }
  if (decision.kind !== 'advance') return null;
  const to = obs.status;
  const terminal = isTerminal(to);
  const job: JobRow = { ...current, status: to, updatedAt: now, eventSeq: current.eventSeq + 1 };
  if (to === 'succeeded') job.progress = 100;
  else if (typeof obs.progress === 'number') job.progress = Math.max(obs.progress, current.progress ?? 0);
  if (!current.submittedAt && to !== 'expired' && to !== 'canceled') job.submittedAt = now;
  if (terminal) job.completedAt = now;
  // Nothing more to ask the provider about a final job (an expired one is still polled, slowly, by the poll worker).
  const clearSchedule = terminal && to !== 'expired';
  if (clearSchedule) {
    job.dueAt = null;
    job.leaseUntil = null;
  }
  const setResult = to === 'succeeded';
  if (setResult) {
    job.result = jsonbSafe({ video_urls: opts.contentUrl ? [opts.contentUrl] : (obs.videoUrls ?? []), raw: obs.raw ?? null });
  }
  const setError = to === 'succeeded' || to === 'failed' || to === 'canceled' || to === 'expired';
  if (setError) job.error = to === 'succeeded' || !obs.error ? null : jsonbSafe(obs.error);
  return { job, clearSchedule, setResult, setError };
}

/** What applying observations does to jobs in a known state: worked out in memory, written by `writeCtes`. */
export interface ObservationPlan {
  /** One per item, in item order. */
  results: TransitionResult[];
  /** Each changed job as it ends up, with what its row update must set. */
  changes: Map<string, Change>;
  /** The events to append, in the order they happened. */
  events: EventRow[];
}

/**
 * Rules on each item against `state` (the jobs as they are; updated in place as items apply, so
 * several items for one job apply one after another). Pure: nothing is written.
 */
export function planObservations(state: Map<string, JobRow>, items: readonly ObservationItem[], now: Date): ObservationPlan {
  const changes = new Map<string, Change>();
  const results: TransitionResult[] = [];
  const events: EventRow[] = [];
  for (const { jobId, obs, opts } of items) {
    const current = state.get(jobId);
    if (!current) throw new JobNotFoundError(`job ${jobId} not found`);
    if (opts?.taskId && current.providerTaskId && current.providerTaskId !== opts.taskId) {
      results.push({ decision: { kind: 'stale' }, job: current, event: null, taskMismatch: true });
      continue;
    }
    const decision = decide(current, obs);
    const next = nextState(current, obs, decision, opts ?? {}, now);
    if (!next) {
      results.push({ decision, job: current, event: null });
      continue;
    }
    const before = changes.get(jobId);
    changes.set(jobId, {
      job: next.job,
      clearSchedule: next.clearSchedule || (before?.clearSchedule ?? false),
      setResult: next.setResult || (before?.setResult ?? false),
      setError: next.setError || (before?.setError ?? false),
    });
    state.set(jobId, next.job);
    let event: EventRow | null = null;
    if (decision.kind === 'advance') {
      // `id` is filled in from the insert; `commitSeq` is set only as the transaction commits.
      event = {
        id: 0,
        eventId: newId('evt'),
        jobId,
        sequence: next.job.eventSeq,
        type: eventTypeFor(obs.status),
        data: jobView(next.job),
        createdAt: now,
        commitSeq: null,
      };
      events.push(event);
    }
    results.push({ decision, job: next.job, event });
  }
  return { results, changes, events };
}

/** The lock that numbers events in commit order (see migration 0002); 726351001 serialises migrations. */
const EVENT_ORDER_LOCK = 726_351_002;

export interface WriteOptions {
  /**
   * Writes only the jobs this names (`job_id in (select id from locked)`), and their events and
   * deliveries: for a statement that locked the jobs itself and may have found some changed.
   */
  onlyJobsIn?: SQL;
  /**
   * Numbers the events as they are inserted, after taking the event-order lock, instead of leaving
   * that to the deferred trigger at commit. Only for a statement that commits right after (outside
   * any transaction): the lock is then held until its commit is visible, as the trigger would hold it.
   */
  numberEvents?: boolean;
}

/** What `writeCtes` writes, each one query parameter: the jobs' new rows and the events (JSON), and the outbox's. */
export interface WriteValues extends OutboxValues {
  jobs: string;
  events: string;
}

export type WriteParams = { [K in keyof WriteValues]: unknown };

/** The names of `WriteValues`' parameters, for statements built with placeholders (see `preparedStatement`). */
export const WRITE_PARAMS = ['jobs', 'events', 'fanned', 'notify', 'deliveryPrefix'] as const satisfies readonly (keyof WriteValues)[];

/**
 * Which of the write's CTEs a batch needs, so that its statement is one of three texts and carries
 * no empty insert: jobs only (no event), jobs and events with their fan-out, or also deliveries to
 * `notify_url`s.
 */
export type WriteShape = 'jobs' | 'events' | 'notify';

export function writeShape(values: Pick<OutboxValues, 'fanned' | 'notify'>): WriteShape {
  return values.notify !== '[]' ? 'notify' : values.fanned !== '[]' ? 'events' : 'jobs';
}

/** A plan's changes as the parameters of `writeCtes`. */
export function writeValues(plan: ObservationPlan): WriteValues {
  const rows = [...plan.changes.values()].map(({ job, clearSchedule, setResult, setError }) => ({
    id: job.id,
    status: job.status,
    progress: job.progress,
    result: job.result ?? null,
    error: job.error ?? null,
    set_result: setResult,
    set_error: setError,
    clear_schedule: clearSchedule,
    submitted_at: job.submittedAt?.toISOString() ?? null,
    completed_at: job.completedAt?.toISOString() ?? null,
    event_seq: job.eventSeq,
    updated_at: job.updatedAt.toISOString(),
  }));
  const eventRows = plan.events.map((e, ord) => ({
    ord,
    event_id: e.eventId,
    job_id: e.jobId,
    sequence: e.sequence,
    type: e.type,
    data: e.data,
    created_at: e.createdAt.toISOString(),
  }));
  const newEvents = plan.results.flatMap((r) => (r.event ? [{ job: r.job, event: r.event }] : []));
  return { jobs: jsonParam(rows), events: jsonParam(eventRows), ...outboxValues(newEvents) };
}

/**
 * The CTEs (`changed`, `appended` returning the events' ids, and the outbox's) that write a plan in
 * one statement, each table once however many jobs changed: data-modifying CTEs over JSON
 * parameters, each run once and to completion, the deliveries' foreign keys checked at the end of the
 * statement, when the events exist. `p` holds the values (`writeValues`) or placeholders for them:
 * the text depends only on `shape` and `opts`, so a statement built from it is prepared once and reused.
 */
export function writeCtes(p: WriteParams, shape: WriteShape, opts: WriteOptions = {}): SQL {
  const only = (column: SQL) => (opts.onlyJobsIn ? sql`and ${column} in ${opts.onlyJobsIn}` : sql``);
  // The CASE takes the lock (the scalar subquery runs once, on first use) before the first nextval.
  const commitSeq = opts.numberEvents
    ? sql`case when (select true from (select pg_advisory_xact_lock(${sql.raw(String(EVENT_ORDER_LOCK))})) l) then nextval('job_events_commit_seq_seq') end`
    : sql`null::bigint`;
  return sql`
    changed as (
      update ${jobs} set
        status = r.status,
        progress = r.progress,
        result = case when r.set_result then nullif(r.result, 'null'::jsonb) else ${jobs.result} end,
        error = case when r.set_error then nullif(r.error, 'null'::jsonb) else ${jobs.error} end,
        submitted_at = coalesce(${jobs.submittedAt}, r.submitted_at),
        completed_at = coalesce(r.completed_at, ${jobs.completedAt}),
        due_at = case when r.clear_schedule then null else ${jobs.dueAt} end,
        lease_until = case when r.clear_schedule then null else ${jobs.leaseUntil} end,
        event_seq = r.event_seq,
        updated_at = r.updated_at
      from jsonb_to_recordset(${p.jobs}::jsonb)
        as r(id text, status text, progress int, result jsonb, error jsonb, set_result boolean, set_error boolean,
             clear_schedule boolean, submitted_at timestamptz, completed_at timestamptz, event_seq int, updated_at timestamptz)
      where ${jobs.id} = r.id ${only(sql`r.id`)}
    ),
    appended as (
      insert into ${jobEvents} (event_id, job_id, sequence, type, data, created_at, commit_seq)
      select e.event_id, e.job_id, e.sequence, e.type, e.data, e.created_at, ${commitSeq}
      from jsonb_to_recordset(${p.events}::jsonb)
        as e(ord int, event_id text, job_id text, sequence int, type text, data jsonb, created_at timestamptz)
      where true ${only(sql`e.job_id`)}
      order by e.ord
      returning id, event_id
    )${outboxCtes(p, shape, opts.onlyJobsIn)}`;
}

const applyStatement = preparedStatement(WRITE_PARAMS, (p, shape: WriteShape) => sql`with ${writeCtes(p, shape)} select id, event_id from appended`);

/**
 * Applies observations to jobs inside the caller's transaction: the only place a job's status
 * changes. The jobs are locked (in id order, so concurrent batches cannot deadlock), `decide` rules
 * on each observation in turn (see `planObservations`), and every change is written with one
 * statement (see `writeCtes`): the jobs, their `job.*` events with the next per-job sequence, and the
 * events' deliveries (the outbox). Duplicates and stale observations change nothing.
 */
export async function applyObservations(tx: Tx, items: readonly ObservationItem[]): Promise<TransitionResult[]> {
  if (!items.length) return [];
  const ids = [...new Set(items.map((i) => i.jobId))].sort();
  const locked = await tx.select().from(jobs).where(inArray(jobs.id, ids)).orderBy(asc(jobs.id)).for('update');
  const plan = planObservations(new Map(locked.map((j) => [j.id, j])), items, new Date());
  if (!plan.changes.size) return plan.results;
  const values = writeValues(plan);
  const inserted = await applyStatement<{ id: number | string; event_id: string }>(tx, values, writeShape(values));
  const idOf = new Map(inserted.map((r) => [r.event_id, Number(r.id)]));
  for (const e of plan.events) e.id = idOf.get(e.eventId)!;
  return plan.results;
}

/** One observation for one job: `applyObservations` with a single item. */
export async function applyObservation(tx: Tx, jobId: string, obs: Observation, opts: ApplyOptions = {}): Promise<TransitionResult> {
  const [result] = await applyObservations(tx, [{ jobId, obs, opts }]);
  return result!;
}
