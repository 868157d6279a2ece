import { describe, expect, it } from 'vitest';
import { estimateFinish, firstPollDelayMs, nextPollDelayMs, type PollState } from '../../src/jobs/schedule.js';

const poll = { initial_delay_s: 15, interval_s: 5, max_interval_s: 60, max_age_s: 7200, callback_grace_s: 600 };
const base: PollState = {
  now: 100_000,
  submittedAt: 0,
  polls: 1,
  callbacks: false,
  progress: null,
  progressAt: null,
  progressBase: null,
  progressBaseAt: null,
};

describe('poll schedule', () => {
  it('waits initial_delay_s first, or callback_grace_s for providers that call back', () => {
    expect(firstPollDelayMs(poll, false)).toBe(15_000);
    expect(firstPollDelayMs(poll, true)).toBe(600_000);
    expect(firstPollDelayMs({ ...poll, max_age_s: 10 }, true)).toBe(10_050);
  });

  it('before any progress, the interval grows from interval_s to max_interval_s', () => {
    const delays = [1, 2, 3, 4, 5, 10, 20].map((polls) => nextPollDelayMs({ ...base, polls }, poll));
    expect(delays[0]).toBe(5000);
    for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(delays.at(-1)).toBe(60_000);
    expect(nextPollDelayMs({ ...base, polls: 3, callbacks: true }, poll)).toBeGreaterThan(nextPollDelayMs({ ...base, polls: 3 }, poll));
  });

  it('estimates the finish from the progress baseline and lands just before it', () => {
    // 10 % → 50 % in 40 s: 1 %/s, 50 s to go.
    const s = { ...base, progress: 50, progressAt: 100_000, progressBase: 10, progressBaseAt: 60_000 };
    expect(estimateFinish(s)).toEqual({ remainingMs: 50_000, relError: 1 / 40 });
    const d = nextPollDelayMs(s, poll);
    expect(d).toBeLessThan(50_000);
    expect(d).toBeGreaterThan(40_000);
    // Nearly there: poll right after the estimated finish.
    const near = { ...s, progress: 99, progressAt: 100_000, progressBase: 9, progressBaseAt: 10_000 };
    expect(nextPollDelayMs(near, poll)).toBe(1000 + 250);
  });

  it('with one progress reading, asks again soon but never after the latest plausible finish', () => {
    const early = { ...base, now: 30_000, progress: 5, progressAt: 30_000, progressBase: 5, progressBaseAt: 30_000 };
    expect(nextPollDelayMs(early, poll)).toBe(5000);
    // 97 % after 90 s: at the slowest possible rate since submission, under 3 s remain.
    const late = { ...base, now: 90_000, progress: 97, progressAt: 90_000, progressBase: 97, progressBaseAt: 90_000 };
    expect(nextPollDelayMs(late, poll)).toBeCloseTo((90_000 * 3) / 97 + 250, 0);
    // 90 % after 90 s: 10 s remain at most, so even a tight budget asks again by then.
    const ninety = { ...late, progress: 90, progressBase: 90 };
    expect(nextPollDelayMs(ninety, poll)).toBe(5000);
    expect(nextPollDelayMs({ ...ninety, fairShareMs: 200_000 }, poll)).toBe(10_250);
  });

  it('spaces blind polls to the fair share of a tight budget, beyond max_interval_s', () => {
    expect(nextPollDelayMs({ ...base, fairShareMs: 200_000 }, poll)).toBe(200_000);
    expect(nextPollDelayMs({ ...base, fairShareMs: 1000 }, poll)).toBe(5000);
  });

  it('never overshoots max_age_s', () => {
    const s = { ...base, now: poll.max_age_s * 1000 - 2000, polls: 20 };
    expect(nextPollDelayMs(s, poll)).toBe(2050);
  });

  it('over 2,000 jobs of 30–180 s with linear progress: under half the requests of a 5 s poller, each finish noticed within 2 s', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let requests = 0;
    let fixedRequests = 0;
    let worst = 0;
    for (let i = 0; i < 2000; i++) {
      const D = (30 + 150 * rand()) * 1000;
      const started = D / 3; // progress moves from a third of the way to the end, as the emulator's does
      const progressAt = (t: number) => (t >= D ? 100 : t < started ? 0 : Math.min(99, Math.max(1, Math.round(((t - started) / (D - started)) * 100))));
      let t = firstPollDelayMs(poll, false);
      let polls = 0;
      let sample: [number, number] | null = null;
      for (;;) {
        polls++;
        const p = progressAt(t);
        if (p === 100) break;
        if (p > 0 && !sample) sample = [p, t];
        t += nextPollDelayMs({ now: t, submittedAt: 0, polls, callbacks: false, progress: p, progressAt: t, progressBase: sample?.[0] ?? null, progressBaseAt: sample?.[1] ?? null }, poll);
      }
      requests += polls;
      worst = Math.max(worst, t - D);
      fixedRequests += Math.ceil(D / 5000);
    }
    expect(requests).toBeLessThan(fixedRequests / 2);
    expect(worst).toBeLessThanOrEqual(2000);
  });
});
