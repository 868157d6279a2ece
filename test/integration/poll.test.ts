import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobs } from '../../src/db/schema.js';
import { type Emulator, startEmulator } from '../../src/emulators/index.js';
import { newId } from '../../src/ids.js';
import { createScratchDatabase, dbKind } from '../helpers/db.js';
import { type RealRelay, startRealRelay } from '../helpers/real-relay.js';

const isTerminal = (j: { status: string }) => ['succeeded', 'failed', 'canceled'].includes(j.status);
/** Poll timings scaled down from seconds to tens of milliseconds. */
const fastPoll = { initial_delay_s: 0.05, interval_s: 0.1, max_interval_s: 0.3, max_age_s: 60, callback_grace_s: 0.3 };

async function eventTypes(relay: RealRelay, id: string): Promise<string[]> {
  return ((await (await relay.api('GET', `/v1/jobs/${id}/events`)).json()) as { data: { type: string }[] }).data.map((e) => e.type);
}

/** Creates `n` tasks at the emulator (as if submitted elsewhere) and returns their ids. */
async function emulatorTasks(e: Emulator, n: number, model = 'veo3.1-video-720p'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, async () => {
        const res = await fetch(`${e.baseUrl}/v1/video/generations`, {
          method: 'POST',
          headers: { authorization: `Bearer ${e.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model, prompt: 'tracked' }),
        });
        return ((await res.json()) as { task_id: string }).task_id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

/** Inserts tracked jobs directly, all due for a poll now. */
async function insertDueJobs(relay: RealRelay, provider: string, taskIds: string[]): Promise<string[]> {
  const rows = taskIds.map((taskId) => ({
    id: newId('job'),
    provider,
    providerTaskId: taskId,
    status: 'submitted' as const,
    submittedAt: new Date(),
    dueAt: new Date(),
  }));
  for (let i = 0; i < rows.length; i += 500) await relay.deps.db.insert(jobs).values(rows.slice(i, i + 500));
  relay.deps.database.notifier.notify('relay_polls');
  return rows.map((r) => r.id);
}

describe(`polling (${dbKind})`, () => {
  let vg: Emulator;
  let ov: Emulator;
  let av: Emulator;
  let vgSlow: Emulator;
  let avSlow: Emulator;
  let relay: RealRelay;

  beforeAll(async () => {
    [vg, ov, av, vgSlow, avSlow] = await Promise.all([
      startEmulator('video-generations', { durationMs: 400 }),
      startEmulator('openai-videos', { durationMs: 400 }),
      startEmulator('aivideoapi', { durationMs: 400 }),
      startEmulator('video-generations', { durationMs: 900 }),
      startEmulator('aivideoapi', { durationMs: 900 }),
    ]);
    const p = (e: Emulator, extra: Record<string, unknown> = {}) => ({ kind: e.kind, base_url: e.baseUrl, api_key: e.apiKey, timeout_s: 2, poll: fastPoll, ...extra });
    relay = await startRealRelay({
      vg: p(vg),
      ov: p(ov),
      av: p(av),
      // Expire after 0.5 s; their jobs finish at 0.9 s, while late polls still run (until 1 s).
      vgshort: p(vgSlow, { poll: { ...fastPoll, max_age_s: 0.5, max_interval_s: 0.05 } }),
      avshort: p(avSlow, { poll: { ...fastPoll, max_age_s: 0.5, callback_grace_s: 5 } }),
    });
  });
  afterAll(async () => {
    await relay?.close();
    await Promise.all([vg, ov, av, vgSlow, avSlow].map((e) => e?.close()));
  });

  async function submit(body: Record<string, unknown>) {
    const res = await relay.api('POST', '/v1/jobs', body);
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  }

  it('poll-only kinds reach their final state with no refresh call', async () => {
    const a = await submit({ provider: 'vg', model: 'veo3.1-video-720p', prompt: 'polled' });
    const b = await submit({ provider: 'ov', model: 'veo-3.1-fast-generate-preview', prompt: 'polled too' });
    const c = await submit({ provider: 'vg', model: 'veo3.1-video-720p', prompt: 'FAIL when polled' });
    expect(await relay.waitFor(a, isTerminal)).toMatchObject({ status: 'succeeded' });
    expect(await relay.waitFor(b, isTerminal)).toMatchObject({ status: 'succeeded' });
    expect(await relay.waitFor(c, isTerminal)).toMatchObject({ status: 'failed' });
    // Whether a poll caught it processing depends on timing; it starts submitted and ends succeeded.
    const events = await eventTypes(relay, a);
    expect([events[0], events.at(-1)]).toEqual(['job.submitted', 'job.succeeded']);
    const refreshes = [...vg.requests, ...ov.requests].filter((r) => r.path.includes('refresh'));
    expect(refreshes).toHaveLength(0);
  });

  it('a callback kind whose callback is lost is finished by the safety-net poll', async () => {
    av.behaviour.callbacks = 'none';
    try {
      const id = await submit({ provider: 'av', prompt: 'callback dropped' });
      const done = await relay.waitFor(id, isTerminal);
      expect(done.status).toBe('succeeded');
      const receipts = ((await (await relay.api('GET', `/v1/jobs/${id}/callbacks`)).json()) as { data: unknown[] }).data;
      expect(receipts).toHaveLength(0);
    } finally {
      av.behaviour.callbacks = 'normal';
    }
  });

  it('a job past max_age_s becomes expired, and a later completion still makes it succeeded (by poll)', async () => {
    const id = await submit({ provider: 'vgshort', model: 'veo3.1-video-720p', prompt: 'slow one' });
    const expired = await relay.waitFor(id, (j) => j.status === 'expired');
    expect(expired.error).toMatchObject({ code: 'expired', source: 'relay' });
    const done = await relay.waitFor(id, (j) => j.status === 'succeeded');
    expect(done.result.video_urls).toHaveLength(1);
    expect(await eventTypes(relay, id)).toEqual(expect.arrayContaining(['job.expired', 'job.succeeded']));
  });

  it('an expired job whose task never finishes is asked for as long again as max_age_s, then no more', async () => {
    const id = await submit({ provider: 'vgshort', model: 'veo3.1-video-720p', prompt: 'never ends' });
    const submitted = await relay.waitFor(id, (j) => j.provider_task_id !== null);
    vgSlow.tasks.get(submitted.provider_task_id)!.finishAt = Date.now() + 3_600_000;
    await relay.waitFor(id, (j) => j.status === 'expired');
    const { eq } = await import('drizzle-orm');
    const deadline = Date.now() + 5000;
    let row;
    do {
      await new Promise((r) => setTimeout(r, 100));
      [row] = await relay.deps.db.select().from(jobs).where(eq(jobs.id, id));
    } while (row!.dueAt !== null && Date.now() < deadline);
    expect(row!.dueAt).toBeNull();
    const asked = vgSlow.requests.filter((r) => r.path.endsWith(submitted.provider_task_id)).length;
    await new Promise((r) => setTimeout(r, 300));
    expect(vgSlow.requests.filter((r) => r.path.endsWith(submitted.provider_task_id)).length).toBe(asked);
  });

  it('a job past max_age_s becomes expired, and a late callback still makes it succeeded', async () => {
    const id = await submit({ provider: 'avshort', prompt: 'late callback' });
    await relay.waitFor(id, (j) => j.status === 'expired' || j.status === 'succeeded');
    const done = await relay.waitFor(id, (j) => j.status === 'succeeded');
    expect(done.status).toBe('succeeded');
    // The poll that expired it may first have seen it processing.
    expect((await eventTypes(relay, id)).slice(-2)).toEqual(['job.expired', 'job.succeeded']);
  });

  it('task_not_found three times in a row fails the job with a clear error', async () => {
    const [id] = await insertDueJobs(relay, 'vg', ['no-such-task']);
    const done = await relay.waitFor(id!, isTerminal);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ code: 'task_not_found', source: 'provider' });
    expect(done.error.message).toMatch(/3 status requests in a row/);
  });

  it("a 429 with Retry-After pauses that provider and not the others", async () => {
    const vgTasks = await emulatorTasks(vg, 5);
    const ovRes = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const r = await fetch(`${ov.baseUrl}/v1/videos`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ov.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'veo-3.1-fast-generate-preview', prompt: 'x' }),
        });
        return ((await r.json()) as { task_id: string }).task_id;
      }),
    );
    vg.behaviour.failNext = { status: 429, count: 1, retryAfterS: 1, on: 'status' };
    const startedAt = Date.now();
    const vgJobs = await insertDueJobs(relay, 'vg', vgTasks);
    const ovJobs = await insertDueJobs(relay, 'ov', ovRes);
    for (const id of ovJobs) await relay.waitFor(id, isTerminal);
    for (const id of vgJobs) await relay.waitFor(id, isTerminal);

    const first429 = vg.requests.find((r) => r.at >= startedAt && r.status === 429)!;
    expect(first429).toBeDefined();
    // The first batch was on its way together with the 429 (its answers trickle in); after it, no
    // task of the paused provider is asked again before the pause ends.
    const seen = new Set<string>();
    const vgDuringPause = vg.requests.filter((r) => {
      if (r.at < startedAt || r.method !== 'GET') return false;
      const again = seen.has(r.path);
      seen.add(r.path);
      return again && r.at < first429.at + 900;
    });
    expect(vgDuringPause).toHaveLength(0);
    const ovDuringPause = ov.requests.filter((r) => r.at > first429.at && r.at < first429.at + 900);
    expect(ovDuringPause.length).toBeGreaterThan(0);
  });
});

describe(`the status rate limit (${dbKind})`, () => {
  it('a burst of 2,000 due jobs never exceeds the configured status rate', async () => {
    const e = await startEmulator('video-generations', { durationMs: 600_000 });
    const perMinute = 12_000; // 200 per second
    const relay = await startRealRelay({
      vg: { kind: 'video-generations', base_url: e.baseUrl, api_key: e.apiKey, rate_limit: { status_per_min: perMinute } },
    });
    try {
      const tasks = await emulatorTasks(e, 2000);
      const startedAt = Date.now();
      await insertDueJobs(relay, 'vg', tasks);
      const deadline = Date.now() + 60_000;
      const statusRequests = () => e.requests.filter((r) => r.method === 'GET' && r.at >= startedAt);
      while (statusRequests().length < 2000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const times = statusRequests()
        .map((r) => r.at)
        .sort((a, b) => a - b);
      expect(times.length).toBeGreaterThanOrEqual(2000);
      // The most requests in any one-second window, and in the whole run against its length.
      let most = 0;
      for (let i = 0, j = 0; i < times.length; i++) {
        while (times[i]! - times[j]! >= 1000) j++;
        most = Math.max(most, i - j + 1);
      }
      // The emulator stamps a request when its handler runs, in the same event loop as the relay
      // and the test, so stamps can bunch by a few ms: 5 % allowance on one-second windows.
      expect(most).toBeLessThanOrEqual((perMinute / 60) * 1.05);
      const first2000 = times.slice(0, 2000);
      const span = (first2000[1999]! - first2000[0]!) / 1000;
      expect(2000 / Math.max(span, 1)).toBeLessThanOrEqual(perMinute / 60);
      expect(relay.metrics.polls.get({ provider: 'vg', outcome: 'submitted' })).toBeGreaterThan(0);
    } finally {
      await relay.close();
      await e.close();
    }
  }, 90_000);
});

describe.skipIf(dbKind === 'pglite')('two relays polling over one Postgres', () => {
  it('1,000 jobs: no job is polled by both at once, and each event is emitted once', async () => {
    const e = await startEmulator('video-generations', { durationMs: 1500 });
    e.behaviour.latencyMs = 30;
    const scratch = await createScratchDatabase();
    const providers = {
      vg: {
        kind: 'video-generations',
        base_url: e.baseUrl,
        api_key: e.apiKey,
        poll: { ...fastPoll, interval_s: 0.2 },
        rate_limit: { status_per_min: 60_000 },
      },
    };
    const a = await startRealRelay(providers, { databaseUrl: scratch.url });
    const b = await startRealRelay(providers, { databaseUrl: scratch.url });
    try {
      const tasks = await emulatorTasks(e, 1000);
      const started = Date.now();
      const ids = await insertDueJobs(a, 'vg', tasks);
      b.deps.database.notifier.notify('relay_polls');
      for (const id of ids) await a.waitFor(id, isTerminal, 60_000);

      // Per task, no two status requests overlap (each takes the emulator's 30 ms latency).
      const byTask = new Map<string, number[]>();
      for (const r of e.requests) {
        if (r.method !== 'GET' || r.at < started) continue;
        const task = r.path.split('/').pop()!;
        byTask.set(task, [...(byTask.get(task) ?? []), r.at]);
      }
      for (const [, times] of byTask) {
        times.sort((x, y) => x - y);
        for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(30);
      }
      const { jobEvents } = await import('../../src/db/schema.js');
      const events = await a.deps.db.select({ jobId: jobEvents.jobId, type: jobEvents.type }).from(jobEvents);
      const keys = events.map((ev) => `${ev.jobId} ${ev.type}`);
      expect(new Set(keys).size).toBe(keys.length);
      expect(events.filter((ev) => ev.type === 'job.succeeded')).toHaveLength(1000);
      // Both replicas did part of the work.
      expect(a.metrics.polls.get({ provider: 'vg', outcome: 'succeeded' })).toBeGreaterThan(0);
      expect(b.metrics.polls.get({ provider: 'vg', outcome: 'succeeded' })).toBeGreaterThan(0);
    } finally {
      await a.close();
      await b.close();
      await e.close();
      await scratch.drop();
    }
  }, 120_000);
});
