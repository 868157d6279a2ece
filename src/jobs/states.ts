import type { JobError, JobStatus } from '../db/schema.js';

export const jobStatuses = [
  'queued',
  'submitted',
  'processing',
  'succeeded',
  'failed',
  'canceled',
  'expired',
] as const satisfies readonly JobStatus[];

/**
 * How far along each status is. A job only moves to a status of higher rank. `expired` sits below
 * the final outcomes so that a provider reporting late can still settle an expired job.
 */
const rank: Record<JobStatus, number> = {
  queued: 0,
  submitted: 1,
  processing: 2,
  expired: 3,
  succeeded: 4,
  failed: 4,
  canceled: 4,
};

export const terminalStatuses: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'canceled', 'expired']);

export function isTerminal(status: JobStatus): boolean {
  return terminalStatuses.has(status);
}

export function statusRank(status: JobStatus): number {
  return rank[status];
}

/** What a provider (by callback or status fetch) or the relay itself says about a job, in the relay's terms. */
export interface Observation {
  status: Exclude<JobStatus, 'queued'>;
  /** 0–100 when the provider reports it. */
  progress?: number | null;
  videoUrls?: string[];
  error?: JobError | null;
  /** The provider's document the observation was read from. */
  raw?: unknown;
}

export type Decision =
  /** The job moves to `to`; one event is appended. */
  | { kind: 'advance'; to: JobStatus }
  /** Same status, more progress: the job is updated, no event. */
  | { kind: 'progress'; progress: number }
  /** Nothing new. */
  | { kind: 'duplicate' }
  /** An earlier state than the job is already in, or a different final outcome: ignored. */
  | { kind: 'stale' };

/** The one rule for whether an observation changes a job. Pure: no I/O. */
export function decide(current: { status: JobStatus; progress: number | null }, obs: Observation): Decision {
  const from = rank[current.status];
  const to = rank[obs.status];
  if (to > from) return { kind: 'advance', to: obs.status };
  if (obs.status !== current.status) return { kind: 'stale' };
  if (!isTerminal(obs.status) && typeof obs.progress === 'number' && obs.progress > (current.progress ?? -1)) {
    return { kind: 'progress', progress: obs.progress };
  }
  return { kind: 'duplicate' };
}

export const eventTypes = [
  'job.submitted',
  'job.processing',
  'job.succeeded',
  'job.failed',
  'job.canceled',
  'job.expired',
] as const;
export type EventType = (typeof eventTypes)[number];

export function eventTypeFor(status: Exclude<JobStatus, 'queued'>): EventType {
  return `job.${status}`;
}

/** Clamps a provider's progress figure into 0–100, or null when it gave none. */
export function normaliseProgress(value: unknown): number | null {
  const n = typeof value === 'string' ? Number.parseFloat(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) return null;
  return Math.max(0, Math.min(100, Math.round(n)));
}
