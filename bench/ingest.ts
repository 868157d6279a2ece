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
 * Every server first takes the same load for --warmup seconds, not counted. Then each is measured
 * for --duration seconds in two halves, in mirrored order (baseline, floor, relay, relay, floor,
 * baseline): this machine's speed drifts by tens of percent within minutes, and a drift over the
 * bench then lands on all three alike instead of on whichever ran last.
 *
 *   npm run bench:ingest -- [--connections 64] [--duration 10] [--warmup 3] [--jobs 300000]
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
    jobs: { type: 'string', default: '300000' },
    'database-url': { type: 'string', default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
});
const CONNECTIONS = Number(values.connections);
const DURATION = Number(values.duration);
const WARMUP = Number(values.warmup);

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

/** A server under test, started with its own scratch database and jobs, idle until loaded. */
interface Server {
  name: string;
  base: string;
  child: Child;
  path(i: number): string;
  /** The job numbers used so far by loads against it (each request takes the next). */
  used: number;
  /** Throws unless every callback answered 200 (`ok` of them) was stored as it should be. */
  check(ok: number): Promise<string>;
  stop(): Promise<void>;
}

async function load(server: Server, duration = DURATION): Promise<Run> {
  const target = server.child;
  let i = server.used;
  const cpu0 = cpuTicks(target.proc.pid!);
  const pg0 = postgresTicks();
  const load0 = cpuTicks(process.pid);
  const started = Date.now();
  const result = await autocannon({
    url: server.base,
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
            path: server.path(i),
            headers: { 'content-type': 'application/json', 'x-event': 'task.completed', 'x-task-id': `task_${i}` },
            body: body(i),
          };
        },
      },
    ],
  });
  const seconds = (Date.now() - started) / 1000;
  server.used = i;
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

async function startRelay(): Promise<Server> {
  const scratch = await scratchDatabase(values['database-url']!);
  const relay = await startRelayProcess({
    databaseUrl: scratch.url,
    config: { providers: { veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } } },
    secret: SECRET,
    adminKey: 'bench-admin-key-0123456789',
  });
  const sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  await insertJobs(sql);
  return {
    name: 'relay',
    base: relay.base,
    child: relay.child,
    path: (i) => `/callbacks/veo/job_${i}/${jobCallbackToken(SECRET, 'veo', `job_${i}`)}`,
    used: 0,
    // Requests still in flight when a run ends may be stored after autocannon stopped counting,
    // so at least every 200 (warm-up included) must be applied, and no job twice.
    async check(ok) {
      const [c] = await sql`select
        (select count(*)::int from callback_receipts where verdict = 'applied') as applied,
        (select count(*)::int from callback_receipts) as receipts,
        (select count(*)::int from jobs where status = 'succeeded') as succeeded,
        (select count(*)::int from job_events where type = 'job.succeeded') as events,
        (select count(*)::int from (select job_id from callback_receipts group by job_id having count(*) > 1) d) as twice`;
      if (c!.applied < ok || c!.succeeded !== c!.applied || c!.events !== c!.applied || c!.twice > 0) {
        throw new Error(`relay answered 200 ${ok} times; applied receipts ${c!.applied}, succeeded jobs ${c!.succeeded}, events ${c!.events}, jobs with two receipts ${c!.twice}`);
      }
      return `every 200 stored and applied once (${c!.applied} applied receipts, ${c!.receipts} receipts)`;
    },
    async stop() {
      await sql.end();
      await relay.stop();
      await scratch.drop();
    },
  };
}

async function insertJobs(sql: postgres.Sql) {
  await sql`insert into jobs (id, provider, provider_task_id, status, submitted_at)
            select 'job_' || g, 'veo', 'task_' || g, 'processing', now() from generate_series(1, ${JOBS}) g`;
  await sql`analyze jobs`;
}

/** The baseline (bench/ingest-baseline.ts) or the floor (bench/ingest-floor.ts, on jobs like the relay's). */
async function startScript(name: string, script: string, env: Record<string, string>): Promise<Server> {
  const scratch = await scratchDatabase(values['database-url']!);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = startChild(process.execPath, ['--import', 'tsx', script], { DATABASE_URL: scratch.url, PORT: String(port), ...env });
  const sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  const stop = async () => {
    await sql.end();
    await child.stop();
    await scratch.drop();
  };
  try {
    await waitReady(`${base}/healthz`, child);
  } catch (err) {
    await stop();
    throw err;
  }
  const floor = script.endsWith('floor.ts');
  if (floor) await insertJobs(sql);
  return {
    name,
    base,
    child,
    path: (i) => `/callbacks/veo/job_${i}/token`,
    used: 0,
    async check(ok) {
      const [c] = await sql.unsafe(
        floor
          ? 'select (select count(*)::int from callback_receipts) as stored, (select count(*)::int from job_events) as events'
          : 'select count(*)::int as stored, count(*)::int as events from raw_callbacks',
      );
      if (c!.stored < ok || c!.events !== c!.stored) throw new Error(`${name} answered 200 ${ok} times; stored ${c!.stored}, events ${c!.events}`);
      return `every 200 stored (${c!.stored})`;
    },
    stop,
  };
}

/** Two runs' figures as one: throughputs and CPU averaged, the worse of the latencies, the RSS after the last. */
function combine(a: Run, b: Run): Run {
  const mean = (f: (r: Run) => number) => (f(a) + f(b)) / 2;
  return {
    rps: mean((r) => r.rps),
    p50: Math.max(a.p50, b.p50),
    p99: Math.max(a.p99, b.p99),
    ok: a.ok + b.ok,
    non2xx: a.non2xx + b.non2xx,
    errors: a.errors + b.errors,
    rss: b.rss,
    cpu: mean((r) => r.cpu),
    pgCpu: mean((r) => r.pgCpu),
    loadCpu: mean((r) => r.loadCpu),
  };
}

const line = (name: string, r: Run) =>
  `  ${name.padEnd(34)} ${r.rps.toFixed(0).padStart(6)} req/s   p50 ${String(r.p50).padStart(3)} ms   p99 ${String(r.p99).padStart(3)} ms   ` +
  `${r.ok} × 2xx, ${r.non2xx} other, ${r.errors} errors   RSS ${r.rss.toFixed(0)} MiB   CPU ${(r.cpu * 100).toFixed(0)}% of a core (PostgreSQL ${(r.pgCpu * 100).toFixed(0)}%, autocannon ${(r.loadCpu * 100).toFixed(0)}%)`;

const labels: Record<string, string> = {
  baseline: 'baseline (Hono + one INSERT)',
  floor: "floor (relay's writes, no logic)",
  relay: 'relay',
};

console.log(
  `callback ingest: ${CONNECTIONS} connections, each request a valid callback for a distinct job; every server is warmed up for ${WARMUP} s, ` +
    `then measured twice for ${DURATION / 2} s, in mirrored order (baseline, floor, relay, relay, floor, baseline) so a machine getting faster or slower ` +
    'over the bench favours none of them',
);
const servers: Server[] = [];
try {
  if (!process.env.SKIP_BASELINE) servers.push(await startScript('baseline', 'bench/ingest-baseline.ts', {}));
  if (!process.env.SKIP_FLOOR) {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('FLOOR_')) as [string, string][]);
    servers.push(await startScript('floor', 'bench/ingest-floor.ts', env));
  }
  if (!process.env.SKIP_RELAY) servers.push(await startRelay());
  // The same load first for `WARMUP` seconds, not counted: V8 is still compiling the hot paths in a
  // process's first seconds (in a cold 10 s run, perf put about a sixth of the relay's CPU in the
  // optimizing compiler), which a server that runs for days pays once.
  const okOf = new Map<Server, number>();
  for (const s of servers) okOf.set(s, WARMUP > 0 ? (await load(s, WARMUP)).ok : 0);
  const runs = new Map<Server, Run[]>(servers.map((s) => [s, []]));
  for (const s of [...servers, ...[...servers].reverse()]) runs.get(s)!.push(await load(s, DURATION / 2));
  const results = new Map<string, Run>();
  for (const s of servers) {
    const [a, b] = runs.get(s)!;
    const run = combine(a!, b!);
    results.set(s.name, run);
    const checked = await s.check(okOf.get(s)! + run.ok);
    console.log(line(labels[s.name]!, run) + `   (runs: ${a!.rps.toFixed(0)} and ${b!.rps.toFixed(0)} req/s, p99 ${a!.p99} and ${b!.p99} ms; ${checked})`);
  }
  const ratio = (a: string, b: string) => (results.has(a) && results.has(b) ? `${(results.get(a)!.rps / results.get(b)!.rps).toFixed(2)}×` : '-');
  console.log(`  throughput: relay/baseline ${ratio('relay', 'baseline')}, floor/baseline ${ratio('floor', 'baseline')}, relay/floor ${ratio('relay', 'floor')}`);
  console.log('  goal: throughput ≥ baseline, p99 < 50 ms, RSS < 150 MB');
} finally {
  for (const s of servers) await s.stop();
}
