/**
 * Callback ingest benchmark (issue: production readiness), on PostgreSQL: autocannon with 64
 * connections for 10 s, each request a valid callback (aivideoapi, verify_by_fetch off) for a
 * distinct tracked job, so every one is stored, verified by token, and applied with its event.
 * Reports throughput, p50/p99 latency, the relay's RSS at the end, and checks that every callback
 * answered 200 was stored and applied exactly once. Baseline in the same run: a minimal Hono handler
 * doing one INSERT of the raw body per request with postgres.js (bench/ingest-baseline.ts).
 *
 * Between the two, the floor (bench/ingest-floor.ts): the relay's own writes for each callback into
 * its own schema, batched, with none of its logic — the least the relay's storage model costs.
 *
 * Every server first takes the same load for --warmup seconds (not counted; see warmUp).
 *
 *   npm run bench:ingest -- [--connections 64] [--duration 10] [--warmup 3] [--jobs 150000]
 *
 * SKIP_BASELINE=1, SKIP_FLOOR=1 or SKIP_RELAY=1 in the environment leaves that server out.
 */
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { jobCallbackToken } from '../src/callbacks/tokens.js';
import { freePort } from '../src/http/free-port.js';
import { type Child, cpuTicks, postgresTicks, rssMiB, scratchDatabase, startChild, startRelayProcess, waitReady } from './lib.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '64' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    jobs: { type: 'string', default: '150000' },
    'database-url': { type: 'string', default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
});
const CONNECTIONS = Number(values.connections);
const DURATION = Number(values.duration);
const WARMUP = Number(values.warmup);

/**
 * The same load for `WARMUP` seconds first, on jobs of its own, not counted: V8 is still compiling
 * the hot paths in a process's first seconds (in a cold 10 s run, perf put about a sixth of the
 * relay's CPU in the optimizing compiler), which a relay that runs for days pays once. Both
 * servers get it.
 */
async function warmUp(base: string, pathFor: (i: number) => string, target: Child): Promise<number> {
  used = 0;
  return WARMUP > 0 ? (await load(base, pathFor, target, WARMUP)).ok : 0;
}
const JOBS = Number(values.jobs);
const SECRET = 'bench-server-secret-0123456789';

interface Run {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  non2xx: number;
  errors: number;
  rss: number;
  cpu: number;
  /** PostgreSQL's CPU over the run, in cores. */
  pgCpu: number;
  /** This process's (autocannon's), in cores. */
  loadCpu: number;
}

function body(i: number): string {
  return JSON.stringify({
    id: `task_${i}`,
    status: 'completed',
    model: 'veo-3',
    created_at: 1774790227,
    completed_at: 1774796529,
    output: { urls: [`https://file.example/videos/${i}.mp4`], metadata: { resolution: '720p' } },
  });
}

/** Job numbers already used by an earlier load against the same server (the warm-up). */
let used = 0;

async function load(base: string, pathFor: (i: number) => string, target: Child, duration = DURATION): Promise<Run> {
  let i = used;
  const cpu0 = cpuTicks(target.proc.pid!);
  const pg0 = postgresTicks();
  const load0 = cpuTicks(process.pid);
  const started = Date.now();
  const result = await autocannon({
    url: base,
    connections: CONNECTIONS,
    duration,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          i++;
          if (i > JOBS) throw new Error(`more than ${JOBS} requests: raise --jobs`);
          return {
            ...req,
            path: pathFor(i),
            headers: { 'content-type': 'application/json', 'x-event': 'task.completed', 'x-task-id': `task_${i}` },
            body: body(i),
          };
        },
      },
    ],
  });
  const seconds = (Date.now() - started) / 1000;
  used = i;
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    rss: rssMiB(target.proc.pid!),
    cpu: (cpuTicks(target.proc.pid!) - cpu0) / 100 / seconds,
    pgCpu: (postgresTicks() - pg0) / 100 / seconds,
    loadCpu: (cpuTicks(process.pid) - load0) / 100 / seconds,
  };
}

async function relayRun(): Promise<Run & { applied: number; receipts: number }> {
  const scratch = await scratchDatabase(values['database-url']!);
  const { child: relay, base, stop } = await startRelayProcess({
    databaseUrl: scratch.url,
    config: { providers: { veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } } },
    secret: SECRET,
    adminKey: 'bench-admin-key-0123456789',
  });
  const sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  try {
    await sql`insert into jobs (id, provider, provider_task_id, status, submitted_at)
              select 'job_' || g, 'veo', 'task_' || g, 'processing', now() from generate_series(1, ${JOBS}) g`;
    await sql`analyze jobs`;
    const paths = (i: number) => `/callbacks/veo/job_${i}/${jobCallbackToken(SECRET, 'veo', `job_${i}`)}`;
    const warmOk = await warmUp(base, paths, relay);
    const run = await load(base, paths, relay);
    // Requests still in flight when the run ends may be stored after autocannon stopped counting,
    // so at least every 200 (warm-up included) must be applied, and no job twice.
    const [counts] = await sql`select
      (select count(*)::int from callback_receipts where verdict = 'applied') as applied,
      (select count(*)::int from callback_receipts) as receipts,
      (select count(*)::int from jobs where status = 'succeeded') as succeeded,
      (select count(*)::int from job_events where type = 'job.succeeded') as events,
      (select count(*)::int from (select job_id from callback_receipts group by job_id having count(*) > 1) d) as twice`;
    const c = counts!;
    if (c.applied < warmOk + run.ok || c.succeeded !== c.applied || c.events !== c.applied || c.twice > 0) {
      throw new Error(`answered 200: ${warmOk} + ${run.ok}; applied receipts ${c.applied}, succeeded jobs ${c.succeeded}, events ${c.events}, jobs with two receipts ${c.twice}`);
    }
    return { ...run, applied: counts!.applied, receipts: counts!.receipts };
  } finally {
    await sql.end();
    await stop();
    await scratch.drop();
  }
}

async function baselineRun(): Promise<Run> {
  const scratch = await scratchDatabase(values['database-url']!);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = startChild(process.execPath, ['--import', 'tsx', 'bench/ingest-baseline.ts'], { DATABASE_URL: scratch.url, PORT: String(port) });
  try {
    await waitReady(`${base}/healthz`, server);
    const path = (i: number) => `/callbacks/veo/job_${i}/token`;
    await warmUp(base, path, server);
    return await load(base, path, server);
  } finally {
    await server.stop();
    await scratch.drop();
  }
}

/** The relay's storage model alone, with none of its logic (bench/ingest-floor.ts), on jobs like the relay's. */
async function floorRun(): Promise<Run> {
  const scratch = await scratchDatabase(values['database-url']!);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = startChild(process.execPath, ['--import', 'tsx', 'bench/ingest-floor.ts'], {
    DATABASE_URL: scratch.url,
    PORT: String(port),
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('FLOOR_')) as [string, string][]),
  });
  const sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  try {
    await waitReady(`${base}/healthz`, server);
    await sql`insert into jobs (id, provider, provider_task_id, status, submitted_at)
              select 'job_' || g, 'veo', 'task_' || g, 'processing', now() from generate_series(1, ${JOBS}) g`;
    await sql`analyze jobs`;
    const path = (i: number) => `/callbacks/veo/job_${i}/token`;
    const warmOk = await warmUp(base, path, server);
    const run = await load(base, path, server);
    const [c] = await sql`select (select count(*)::int from callback_receipts) as receipts, (select count(*)::int from job_events) as events`;
    if (c!.receipts < warmOk + run.ok || c!.events !== c!.receipts) throw new Error(`floor: answered 200 ${warmOk} + ${run.ok}; receipts ${c!.receipts}, events ${c!.events}`);
    return run;
  } finally {
    await sql.end();
    await server.stop();
    await scratch.drop();
  }
}

const line = (name: string, r: Run) =>
  `  ${name.padEnd(34)} ${r.rps.toFixed(0).padStart(6)} req/s   p50 ${String(r.p50).padStart(3)} ms   p99 ${String(r.p99).padStart(3)} ms   ` +
  `${r.ok} × 2xx, ${r.non2xx} other, ${r.errors} errors   RSS ${r.rss.toFixed(0)} MiB   CPU ${(r.cpu * 100).toFixed(0)}% of a core (PostgreSQL ${(r.pgCpu * 100).toFixed(0)}%, autocannon ${(r.loadCpu * 100).toFixed(0)}%)`;

console.log(`callback ingest: ${CONNECTIONS} connections for ${DURATION} s after ${WARMUP} s of warm-up, each request a valid callback for a distinct job`);
const baseline = process.env.SKIP_BASELINE ? null : await baselineRun();
if (baseline) console.log(line('baseline (Hono + one INSERT)', baseline));
const floor = process.env.SKIP_FLOOR ? null : await floorRun();
if (floor) console.log(line('floor (relay\'s writes, no logic)', floor));
if (process.env.SKIP_RELAY) process.exit(0);
const relay = await relayRun();
console.log(line('relay', relay));
console.log(
  `  relay/baseline throughput ${baseline ? (relay.rps / baseline.rps).toFixed(2) : '-'}×; every 200 stored and applied once (${relay.applied} applied receipts, ${relay.receipts} receipts)`,
);
console.log('  goal: throughput ≥ baseline, p99 < 50 ms, RSS < 150 MB');
