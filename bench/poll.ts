/**
 * Poll-schedule benchmark (issue: polling). Jobs on a video-generations emulator finish after a
 * random 30–180 s; the relay must notice each one within the provider's status rate limit. Side by
 * side, on the same emulator with the same job durations, a fixed 5-second poller.
 *
 * Time is scaled down uniformly by --scale (every duration, interval and the rate limit alike), so
 * the figures printed are in real-time terms. The relay runs as its own process (node dist/main.js)
 * on PostgreSQL, so its CPU is measured alone.
 *
 *   npm run bench:poll -- [--jobs 10000] [--limit 3000] [--scale 10] [--seed 1]
 *
 * Two fixed pollers are measured: "fixed 5 s" polls every job every 5 s whatever the limit (what a
 * hand-written poller does; it is reported with the peak rate it reached), and "fixed 5 s, limited"
 * polls round-robin every 5 s but never faster than the limit (the fair comparison when the limit
 * binds). With many jobs the unlimited one would need far more than the limit allows; it is then run
 * on a sample of the jobs and scaled up, and the output says so.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { type Emulator, startEmulator } from '../src/emulators/index.js';
import { newId } from '../src/ids.js';
import { freePort } from '../src/http/free-port.js';
import { cpuTicks, percentile } from './lib.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '10000' },
    limit: { type: 'string', default: '3000' },
    scale: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    'database-url': { type: 'string', default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    'fixed-sample': { type: 'string', default: '200' },
  },
});
const N = Number(values.jobs);
const LIMIT = Number(values.limit); // status requests per real minute
const K = Number(values.scale);
const FIXED_SAMPLE = Math.min(N, Number(values['fixed-sample']));
const real = (scaledMs: number) => (scaledMs * K) / 1000; // scaled ms → real seconds

/** A small deterministic PRNG, so both runs see the same job durations. */
function mulberry32(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function durations(n: number): number[] {
  const rand = mulberry32(Number(values.seed));
  return Array.from({ length: n }, () => ((30 + 150 * rand()) * 1000) / K);
}

async function createTasks(e: Emulator, durs: number[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < durs.length; i += 200) {
    const batch = await Promise.all(
      durs.slice(i, i + 200).map(async (d) => {
        const res = await fetch(`${e.baseUrl}/v1/video/generations`, {
          method: 'POST',
          headers: { authorization: `Bearer ${e.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'veo3.1-video-720p', prompt: 'bench' }),
        });
        const id = ((await res.json()) as { task_id: string }).task_id;
        const task = e.tasks.get(id)!;
        task.finishAt = task.createdAt + d;
        return id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

/** The most requests seen in any window of `windowMs` (scaled). */
function peakInWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

interface Result {
  name: string;
  jobs: number;
  requestsPerJob: number;
  p50: number;
  p99: number;
  peakPerMin: number;
  note?: string;
  cpu?: string;
}


async function runRelay(e: Emulator): Promise<Result> {
  const admin = postgres(values['database-url']!, { max: 1, onnotice: () => {} });
  const dbName = `relay_bench_${Date.now()}`;
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(values['database-url']!);
  url.pathname = `/${dbName}`;
  const dir = mkdtempSync(join(tmpdir(), 'relay-bench-'));
  let proc: ChildProcess | undefined;
  const sql = postgres(url.toString(), { max: 4, onnotice: () => {} });
  try {
    const configPath = join(dir, 'relay.json');
    const s = (seconds: number) => seconds / K;
    writeFileSync(
      configPath,
      JSON.stringify({
        providers: {
          vg: {
            kind: 'video-generations',
            base_url: e.baseUrl,
            api_key: e.apiKey,
            timeout_s: 30,
            poll: { initial_delay_s: s(15), interval_s: s(5), max_interval_s: s(60), max_age_s: s(7200), callback_grace_s: s(600) },
            rate_limit: { status_per_min: LIMIT * K },
          },
        },
      }),
    );
    const port = await freePort();
    // BENCH_NODE_ARGS go to the relay's node, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile it.
    const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    proc = spawn(process.execPath, [...nodeArgs, 'dist/main.js'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: url.toString(), RELAY_CONFIG: configPath, RELAY_ADMIN_KEY: 'bench-admin-key-0123456789', LOG_LEVEL: 'warn' },
      stdio: ['ignore', process.env.BENCH_RELAY_LOGS ? 'inherit' : 'ignore', 'inherit'],
    });
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
      } catch {}
      if (i > 300) throw new Error('relay did not start');
      await new Promise((r) => setTimeout(r, 100));
    }

    // The tasks start now, with the relay ready: tracked as if submitted elsewhere, the first poll
    // due when the relay would schedule it.
    const tasks = await createTasks(e, durations(N));
    const firstDue = new Date(Date.now() + (15 * 1000) / K);
    const rows = tasks.map((t) => ({ id: newId('job'), provider: 'vg', provider_task_id: t, status: 'submitted', submitted_at: new Date(), due_at: firstDue }));
    for (let i = 0; i < rows.length; i += 1000) await sql`insert into jobs ${sql(rows.slice(i, i + 1000))}`;
    await sql`select pg_notify('relay_polls', '')`;
    const start = Date.now();
    const cpu0 = cpuTicks(proc.pid!);
    for (;;) {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from jobs where status in ('succeeded','failed')`;
      if (row!.n >= N) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const wall = (Date.now() - start) / 1000;
    const cpuSeconds = (cpuTicks(proc.pid!) - cpu0) / 100;
    const done = await sql<{ provider_task_id: string; completed_at: Date }[]>`select provider_task_id, completed_at from jobs`;
    const delays = done.map((j) => real(j.completed_at.getTime() - e.tasks.get(j.provider_task_id)!.finishAt)).sort((a, b) => a - b);
    const taskSet = new Set(tasks);
    const gets = e.requests.filter((r) => r.method === 'GET' && taskSet.has(r.path.split('/').pop()!)).map((r) => r.at);
    const cpuShare = cpuSeconds / wall;
    if (process.env.BENCH_DEBUG) {
      const worst = done
        .map((j) => ({ id: j.provider_task_id, delay: real(j.completed_at.getTime() - e.tasks.get(j.provider_task_id)!.finishAt) }))
        .sort((a, b) => b.delay - a.delay)
        .slice(0, 5);
      for (const w of worst) {
        const t = e.tasks.get(w.id)!;
        const polls = e.requests.filter((r) => r.path.endsWith(w.id)).map((r) => real(r.at - t.createdAt).toFixed(1));
        process.stdout.write(`worst: duration ${real(t.finishAt - t.createdAt).toFixed(1)} s, delay ${w.delay.toFixed(1)} s, polls at ${polls.join(' ')}\n`);
      }
    }
    return {
      name: 'relay',
      jobs: N,
      requestsPerJob: gets.length / N,
      p50: percentile(delays, 50),
      p99: percentile(delays, 99),
      peakPerMin: peakInWindow(gets, 60_000 / K),
      cpu: `${(cpuShare * 100).toFixed(0)} % of a core at ${K}× speed ≈ ${((cpuShare / K) * 100).toFixed(1)} % in real time`,
    };
  } finally {
    proc?.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await sql.end();
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A fixed poller: every job every 5 s (scaled) from its start until it is finished. With
 * `limitPerMin`, requests wait their turn so the provider's limit is never exceeded (round-robin).
 */
async function runFixed(e: Emulator, n: number, limitPerMin: number | null): Promise<Result> {
  const durs = durations(N).slice(0, n);
  const tasks = await createTasks(e, durs);
  const interval = 5000 / K;
  const noticed = new Map<string, number>();
  let sent = 0;
  const times: number[] = [];
  let nextSlot = Date.now();
  const gap = limitPerMin ? 60_000 / K / (limitPerMin) : 0;
  const pending = new Set(tasks);
  // First poll after the relay's initial delay, for a like-for-like start.
  await new Promise((r) => setTimeout(r, (15 * 1000) / K));
  const inflight = new Set<Promise<void>>();
  const pollOnce = async (id: string) => {
    sent++;
    times.push(Date.now());
    const res = await fetch(`${e.baseUrl}/v1/videos/${id}`, { headers: { authorization: `Bearer ${e.apiKey}` } });
    const doc = (await res.json()) as { status: string };
    if (doc.status === 'completed' || doc.status === 'failed') {
      noticed.set(id, Date.now());
      pending.delete(id);
    }
  };
  while (pending.size) {
    const round = Date.now();
    for (const id of [...pending]) {
      if (gap) {
        const slot = Math.max(nextSlot, Date.now());
        nextSlot = slot + gap;
        if (slot > Date.now()) await new Promise((r) => setTimeout(r, slot - Date.now()));
      }
      while (inflight.size >= 64) await Promise.race(inflight);
      const p: Promise<void> = pollOnce(id).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all(inflight);
    const wait = round + interval - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const delays = tasks.map((id) => real(noticed.get(id)! - e.tasks.get(id)!.finishAt)).sort((a, b) => a - b);
  return {
    name: limitPerMin ? 'fixed 5 s, limited' : 'fixed 5 s',
    jobs: n,
    requestsPerJob: sent / n,
    p50: percentile(delays, 50),
    p99: percentile(delays, 99),
    peakPerMin: Math.round((peakInWindow(times, 60_000 / K) * N) / n),
    ...(n < N ? { note: `run on ${n} of the ${N} jobs; its peak rate is scaled up to ${N}` } : {}),
  };
}

async function main() {
  const e = await startEmulator('video-generations', { durationMs: 60_000 });
  try {
    process.stdout.write(`poll bench: ${N} jobs finishing after 30–180 s, status limit ${LIMIT}/min, time scaled ${K}×\n\n`);
    const results: Result[] = [];
    results.push(await runRelay(e));
    results.push(await runFixed(e, FIXED_SAMPLE, null));
    results.push(await runFixed(e, N, LIMIT));
    const rows = [
      ['poller', 'jobs', 'requests/job', 'notice delay p50 (s)', 'p99 (s)', 'peak requests/min', 'within limit'],
      ...results.map((r) => [
        r.name,
        String(r.jobs),
        r.requestsPerJob.toFixed(2),
        r.p50.toFixed(1),
        r.p99.toFixed(1),
        String(r.peakPerMin),
        r.peakPerMin <= LIMIT ? 'yes' : 'NO',
      ]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
    for (const r of results) {
      if (r.note) process.stdout.write(`\n${r.name}: ${r.note}`);
      if (r.cpu) process.stdout.write(`\n${r.name} CPU: ${r.cpu}`);
    }
    const relay = results[0]!;
    const fixed = results[1]!;
    process.stdout.write(
      `\n\nrelay vs fixed 5 s: ${((relay.requestsPerJob / fixed.requestsPerJob) * 100).toFixed(0)} % of its requests per job, ` +
        `p99 ${relay.p99.toFixed(1)} s vs ${fixed.p99.toFixed(1)} s\n`,
    );
  } finally {
    await e.close();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
