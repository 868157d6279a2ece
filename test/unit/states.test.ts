import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JobStatus } from '../../src/db/schema.js';
import { decide, jobStatuses, type Observation, statusRank } from '../../src/jobs/states.js';

type Kind = ReturnType<typeof decide>['kind'];

describe('job state machine', () => {
  // [current, observed, decision]
  const table: [JobStatus, Observation['status'], Kind][] = [
    ['queued', 'submitted', 'advance'],
    ['queued', 'processing', 'advance'],
    ['queued', 'succeeded', 'advance'],
    ['submitted', 'processing', 'advance'],
    ['submitted', 'succeeded', 'advance'],
    ['submitted', 'failed', 'advance'],
    ['submitted', 'expired', 'advance'],
    ['submitted', 'canceled', 'advance'],
    ['processing', 'succeeded', 'advance'],
    ['processing', 'failed', 'advance'],
    ['processing', 'expired', 'advance'],
    ['processing', 'submitted', 'stale'],
    ['submitted', 'submitted', 'duplicate'],
    ['processing', 'processing', 'duplicate'],
    ['succeeded', 'succeeded', 'duplicate'],
    ['succeeded', 'processing', 'stale'],
    ['succeeded', 'submitted', 'stale'],
    ['succeeded', 'failed', 'stale'],
    ['failed', 'succeeded', 'stale'],
    ['succeeded', 'expired', 'stale'],
    ['canceled', 'succeeded', 'stale'],
    ['canceled', 'processing', 'stale'],
    // A provider reporting late still settles an expired job; a non-final report does not.
    ['expired', 'succeeded', 'advance'],
    ['expired', 'failed', 'advance'],
    ['expired', 'processing', 'stale'],
    ['expired', 'expired', 'duplicate'],
  ];
  it.each(table)('%s + observed %s → %s', (current, status, kind) => {
    expect(decide({ status: current, progress: null }, { status }).kind).toBe(kind);
  });

  it('more progress in the same status updates without a move; less or equal is a duplicate', () => {
    expect(decide({ status: 'processing', progress: 10 }, { status: 'processing', progress: 50 })).toEqual({
      kind: 'progress',
      progress: 50,
    });
    expect(decide({ status: 'processing', progress: 50 }, { status: 'processing', progress: 10 }).kind).toBe('duplicate');
    expect(decide({ status: 'processing', progress: 50 }, { status: 'processing', progress: 50 }).kind).toBe('duplicate');
    expect(decide({ status: 'processing', progress: null }, { status: 'processing', progress: 0 }).kind).toBe('progress');
  });

  const observed = fc.constantFrom(...jobStatuses.filter((s) => s !== 'queued')) as fc.Arbitrary<Observation['status']>;
  const observation = fc.record({ status: observed, progress: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }) });

  function run(start: { status: JobStatus; progress: number | null }, seq: Observation[]) {
    let job = { ...start };
    let moves = 0;
    for (const obs of seq) {
      const d = decide(job, obs);
      if (d.kind === 'advance') {
        job = { status: d.to, progress: obs.status === 'succeeded' ? 100 : (obs.progress ?? job.progress) };
        moves++;
      } else if (d.kind === 'progress') {
        job = { ...job, progress: d.progress };
        moves++;
      }
    }
    return { job, moves };
  }

  it('any sequence of observations leaves the job no earlier than the furthest one observed', () => {
    fc.assert(
      fc.property(fc.array(observation, { minLength: 1, maxLength: 30 }), (seq) => {
        const { job } = run({ status: 'queued', progress: null }, seq);
        const furthest = Math.max(...seq.map((o) => statusRank(o.status)));
        expect(statusRank(job.status)).toBe(furthest);
      }),
    );
  });

  it('applying the same sequence a second time changes nothing', () => {
    fc.assert(
      fc.property(fc.array(observation, { minLength: 1, maxLength: 30 }), (seq) => {
        const first = run({ status: 'queued', progress: null }, seq);
        const again = run(first.job, seq);
        expect(again.job).toEqual(first.job);
        expect(again.moves).toBe(0);
      }),
    );
  });

  it('a final outcome is never replaced by another', () => {
    fc.assert(
      fc.property(fc.constantFrom<JobStatus>('succeeded', 'failed', 'canceled'), observation, (final, obs) => {
        expect(decide({ status: final, progress: 100 }, obs).kind).not.toBe('advance');
      }),
    );
  });
});
