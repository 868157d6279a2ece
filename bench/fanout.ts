/**
 * Fan-out benchmark (issue: fan-out), on PostgreSQL, against a local sink that answers 200 at once.
 *
 * 1. Throughput: a backlog of --deliveries deliveries is committed in one transaction (jobs, their
 *    events, one delivery per subscription) with 1, 10 and 100 subscriptions; the relay (its own
 *    process, `node dist/main.js`) drains it; deliveries/s = count / (commit → the sink has them all).
 *    Baseline in the same run: graphile-worker 0.17 performing the same signed POSTs to the same
 *    sink (bench/graphile-baseline.ts), its jobs queued beforehand and only the draining timed.
 * 2. Latency: --rate callbacks/s for --seconds, each a valid callback for a distinct tracked job
 *    (verify_by_fetch off), one subscription; for each, the time from the callback's 200 arriving at
 *    the sender to the subscriber's sink receiving the job's delivery (p50/p99; negative when the
 *    delivery beat the 200 back to the sender).
 *
 *   npm run bench:fanout -- [--deliveries 20000] [--subs 1,10,100] [--rate 200] [--seconds 10] [--concurrency 32]
 */
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { jobCallbackUrl } from '../src/callbacks/tokens.js';
import { type Child, cpuTicks, now, percentile, rssMiB, scratchDatabase, startChild, startRelayProcess } from './lib.js';

const { values } = parseArgs({
  options: {
    deliveries: { type: 'string', default: '20000' },
    subs: { type: 'string', default: '1,10,100' },
    rate: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '32' },
    'database-url': { type: 'string', default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
});
const TOTAL = Number(values.deliveries);
const SUBS = values.subs ? values.subs.split(',').map(Number) : [];
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const BASE_URL = values['database-url']!;
const ADMIN_KEY = 'bench-admin-key-0123456789';
const SECRET = 'bench-server-secret-0123456789';

interface Sink {
  child: Child;
  url: string;
  ask<T>(message: string): Promise<T>;
}

async function startSink(keep: boolean): Promise<Sink> {
  const child = startChild(process.execPath, ['bench/sink.mjs'], { SINK_KEEP: keep ? '1' : '0' }, true);
  const port = await new Promise<number>((resolve) => child.proc.once('message', (m: any) => resolve(m.port)));
  return {
    child,
    url: `http://127.0.0.1:${port}/hook`,
    ask: (message) =>
      new Promise((resolve) => {
        child.proc.once('message', (m) => resolve(m as never));
        child.proc.send(message);
      }),
  };
}

async function waitForCount(sink: Sink, n: number, timeoutMs = 300_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { count } = await sink.ask<{ count: number }>('count');
    if (count >= n) return now();
    if (Date.now() > deadline) throw new Error(`the sink got ${count} of ${n} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function startRelay(dbUrl: string, providers: Record<string, unknown> = {}) {
  const { child, base, stop } = await startRelayProcess({
    databaseUrl: dbUrl,
    config: { providers, delivery: { allow_private_targets: true } },
    secret: SECRET,
    adminKey: ADMIN_KEY,
  });
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<any>;
  };
  return {
    child,
    base,
    api,
    stop,
  };
}

/** Commits `jobs` succeeded jobs with their events and one delivery per subscription, in one transaction. */
async function commitBacklog(sql: postgres.Sql, jobs: number) {
  await sql.begin(async (tx) => {
    await tx`insert into jobs (id, provider, status, metadata, event_seq, completed_at)
             select 'job_bench_' || g, 'veo', 'succeeded', '{}'::jsonb, 1, now() from generate_series(1, ${jobs}) g`;
    await tx`insert into job_events (event_id, job_id, sequence, type, data)
             select 'evt_bench_' || g, 'job_bench_' || g, 1, 'job.succeeded',
                    jsonb_build_object('id', 'job_bench_' || g, 'status', 'succeeded', 'provider', 'veo', 'metadata', '{}'::jsonb)
             from generate_series(1, ${jobs}) g`;
    await tx`insert into deliveries (id, subscription_id, job_id, event_id, event_type, next_attempt_at)
             select 'dlv_bench_' || g || '_' || s.id, s.id, 'job_bench_' || g, 'evt_bench_' || g, 'job.succeeded', now()
             from generate_series(1, ${jobs}) g cross join subscriptions s`;
  });
}

async function relayThroughput(subs: number): Promise<{ rate: number; cpu: number; rss: number }> {
  const scratch = await scratchDatabase(BASE_URL);
  const sink = await startSink(false);
  const relay = await startRelay(scratch.url);
  const sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  try {
    for (let i = 0; i < subs; i++) await relay.api('POST', '/v1/subscriptions', { url: sink.url });
    const jobs = Math.ceil(TOTAL / subs);
    const cpu0 = cpuTicks(relay.child.proc.pid!);
    await commitBacklog(sql, jobs);
    const t0 = now();
    const t1 = await waitForCount(sink, jobs * subs);
    const cpu = (cpuTicks(relay.child.proc.pid!) - cpu0) / 100 / ((t1 - t0) / 1000);
    const [row] = await sql`select count(*)::int as n from deliveries where status <> 'delivered'`;
    if (row!.n > 0) {
      // Outcomes are recorded in batches right after the POSTs; give the last batch a moment.
      await new Promise((r) => setTimeout(r, 500));
    }
    return { rate: (jobs * subs) / ((t1 - t0) / 1000), cpu, rss: rssMiB(relay.child.proc.pid!) };
  } finally {
    await sql.end();
    await relay.stop();
    await sink.child.stop();
    await scratch.drop();
  }
}

async function graphileThroughput(total: number): Promise<number> {
  const scratch = await scratchDatabase(BASE_URL);
  const sink = await startSink(false);
  const worker = startChild(
    process.execPath,
    ['--import', 'tsx', 'bench/graphile-baseline.ts'],
    { DATABASE_URL: scratch.url, SINK_URL: sink.url, TOTAL: String(total), CONCURRENCY: values.concurrency! },
    true,
  );
  try {
    await new Promise<void>((resolve, reject) => {
      worker.proc.once('message', () => resolve());
      void worker.exited.then(() => reject(new Error(`graphile baseline exited:\n${worker.output()}`)));
    });
    const t0 = now();
    worker.proc.send('go');
    const t1 = await waitForCount(sink, total);
    return total / ((t1 - t0) / 1000);
  } finally {
    if (worker.proc.connected) worker.proc.send('stop');
    await worker.stop();
    await sink.child.stop();
    await scratch.drop();
  }
}

async function latency() {
  const scratch = await scratchDatabase(BASE_URL);
  const sink = await startSink(true);
  const relay = await startRelay(scratch.url, {
    veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false },
  });
  const sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  try {
    await relay.api('POST', '/v1/subscriptions', { url: sink.url });
    const n = RATE * SECONDS;
    await sql`insert into jobs (id, provider, provider_task_id, status, submitted_at)
              select 'job_lat_' || g, 'veo', 'task_lat_' || g, 'processing', now() from generate_series(1, ${n}) g`;
    const okAt = new Map<string, number>();
    const callbackMs: number[] = [];
    let non200 = 0;
    const started = now();
    const sends: Promise<void>[] = [];
    for (let i = 1; i <= n; i++) {
      const due = started + ((i - 1) * 1000) / RATE;
      const wait = due - now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const jobId = `job_lat_${i}`;
      const body = JSON.stringify({
        id: `task_lat_${i}`,
        status: 'completed',
        model: 'veo-3',
        created_at: 1774790227,
        completed_at: 1774796529,
        output: { urls: ['https://file.example/v.mp4'] },
      });
      const sentAt = now();
      sends.push(
        fetch(jobCallbackUrl(relay.base, SECRET, 'veo', jobId), {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-event': 'task.completed', 'x-task-id': `task_lat_${i}` },
          body,
        }).then(async (res) => {
          const at = now();
          callbackMs.push(at - sentAt);
          await res.arrayBuffer();
          if (res.status === 200) okAt.set(jobId, at);
          else non200++;
        }),
      );
    }
    await Promise.all(sends);
    await waitForCount(sink, okAt.size, 60_000);
    const { arrivals } = await sink.ask<{ arrivals: [string, number][] }>('arrivals');
    const received = new Map(arrivals.map(([id, at]) => [id, at]));
    const lat = [...okAt].map(([id, at]) => received.get(id)! - at).sort((a, b) => a - b);
    callbackMs.sort((a, b) => a - b);
    return {
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: lat[lat.length - 1]!,
      n: lat.length,
      non200,
      callbackP50: percentile(callbackMs, 50),
      callbackP99: percentile(callbackMs, 99),
    };
  } finally {
    await sql.end();
    await relay.stop();
    await sink.child.stop();
    await scratch.drop();
  }
}

console.log(`fan-out bench: ${TOTAL} deliveries per run, sink answers 200 at once, PostgreSQL ${BASE_URL.replace(/\/\/[^@]*@/, '//')}`);
const fmt = (x: number) => x.toFixed(0).padStart(7);
console.log('\nthroughput (deliveries/s, commit of the backlog → the sink has every one)');
const baseline = SUBS.length ? await graphileThroughput(TOTAL) : NaN;
console.log(`  graphile-worker 0.17, concurrency ${values.concurrency}: ${fmt(baseline)}/s   (baseline)`);
for (const subs of SUBS) {
  const r = await relayThroughput(subs);
  console.log(
    `  relay, ${String(subs).padStart(3)} subscription(s):        ${fmt(r.rate)}/s   ${(r.rate / baseline).toFixed(2)}× baseline, relay CPU ${(r.cpu * 100).toFixed(0)}% of a core, RSS ${r.rss.toFixed(0)} MiB`,
  );
}
const l = await latency();
console.log(`\ncallback → subscriber latency at ${RATE} callbacks/s for ${SECONDS} s (${l.n} callbacks answered 200, ${l.non200} not)`);
console.log(`  p50 ${l.p50.toFixed(1)} ms   p99 ${l.p99.toFixed(1)} ms   max ${l.max.toFixed(1)} ms   (goal: p50 < 10 ms, p99 < 50 ms)`);
console.log(`  (the callbacks themselves: p50 ${l.callbackP50.toFixed(1)} ms, p99 ${l.callbackP99.toFixed(1)} ms from send to 200)`);
