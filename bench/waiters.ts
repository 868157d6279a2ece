/**
 * Long-poll benchmark (issue 6): the memory and CPU of 500 simultaneous `GET /v1/jobs/{id}?wait=60`
 * on one relay process, and how fast they are released when their jobs finish. The same-run
 * baseline is the same process, warmed up, with no request open.
 *
 *   npm run bench:waiters -- [--waiters 500] [--hold 10] [--database-url postgres://…]
 *
 * The relay runs as its own process (node dist/main.js) on a scratch database of the PostgreSQL
 * server, created and dropped here, so its RSS (from /proc) is its own. Jobs are tracked, each gets
 * one waiter, and then every job's provider calls back "completed"; each waiter must answer with the
 * finished job, long before its 60 s are up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { jobCallbackToken } from '../src/callbacks/tokens.js';
import { freePort } from '../src/http/free-port.js';
import { aivideoapiDocs } from '../test/helpers/fake-aivideoapi.js';
import { cpuTicks, rssMiB } from './lib.js';

const { values } = parseArgs({
  options: {
    waiters: { type: 'string', default: '500' },
    hold: { type: 'string', default: '10' },
    'database-url': {
      type: 'string',
      default: process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
  },
});
const N = Number(values.waiters);
const HOLD_S = Number(values.hold);
const ADMIN_KEY = 'bench-admin-key-0123456789';
const SECRET = 'bench-relay-secret-0123456789';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The median of a few RSS readings over a second, so one GC in flight does not decide the figure. */
async function steadyRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssMiB(pid));
    await sleep(250);
  }
  return samples.sort((a, b) => a - b)[2]!;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main() {
  const admin = postgres(values['database-url']!, { max: 1, onnotice: () => {} });
  const dbName = `relay_bench_waiters_${Date.now()}`;
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(values['database-url']!);
  url.pathname = `/${dbName}`;
  const dir = mkdtempSync(join(tmpdir(), 'relay-bench-waiters-'));
  let relay: ChildProcess | undefined;
  try {
    // The provider is never called: callbacks are believed as they come (no fetch to confirm them),
    // and no job is old enough to be polled.
    const configPath = join(dir, 'relay.json');
    writeFileSync(configPath, JSON.stringify({ providers: { veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } } }));
    const port = await freePort();
    relay = spawn(process.execPath, ['dist/main.js'], {
      env: {
        PATH: process.env.PATH ?? '',
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: url.toString(),
        RELAY_CONFIG: configPath,
        RELAY_ADMIN_KEY: ADMIN_KEY,
        RELAY_SECRET: SECRET,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const pid = relay.pid!;
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/readyz`)).ok) break;
      } catch {}
      if (i > 300) throw new Error('relay did not start');
      await sleep(100);
    }
    const auth = { authorization: `Bearer ${ADMIN_KEY}` };

    const jobs: { id: string; taskId: string }[] = [];
    await eachLimited(
      Array.from({ length: N }, (_, i) => `bench-task-${i}`),
      20,
      async (taskId) => {
        const res = await fetch(`${base}/v1/jobs/track`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ provider: 'veo', provider_task_id: taskId }),
        });
        if (res.status !== 201) throw new Error(`track: ${res.status} ${await res.text()}`);
        jobs.push({ id: ((await res.json()) as { id: string }).id, taskId });
      },
    );
    // Warm the code paths and the connection pool, so the baseline is a process that has served.
    await eachLimited(jobs, 50, async (j) => void (await (await fetch(`${base}/v1/jobs/${j.id}`, { headers: auth })).text()));
    await sleep(2000);
    const idle = await steadyRss(pid);

    const opened = performance.now();
    const answers = jobs.map((j) =>
      fetch(`${base}/v1/jobs/${j.id}?wait=60`, { headers: auth }).then(async (res) => ({
        at: performance.now(),
        status: res.status,
        job: (await res.json()) as { id: string; status: string },
      })),
    );
    let early = 0;
    for (const a of answers) void a.then(() => early++);
    await sleep(3000);
    const holding = await steadyRss(pid);
    const cpu0 = cpuTicks(pid);
    await sleep(HOLD_S * 1000);
    const holdCpu = (cpuTicks(pid) - cpu0) / 100 / HOLD_S;
    const earlyAnswers = early;

    // Every provider task finishes: one callback per job, 20 at a time.
    const answeredAt = new Map<string, number>();
    const finishing = performance.now();
    await eachLimited(jobs, 20, async (j) => {
      const res = await fetch(`${base}/callbacks/veo/${j.id}/${jobCallbackToken(SECRET, 'veo', j.id)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(aivideoapiDocs.completed(j.taskId)),
      });
      if (res.status !== 200) throw new Error(`callback: ${res.status} ${await res.text()}`);
      answeredAt.set(j.id, performance.now());
    });
    const results = await Promise.all(answers);
    const allDone = performance.now();
    const released = results.filter((r) => r.status === 200 && r.job.status === 'succeeded').length;
    const lag = results.map((r) => r.at - answeredAt.get(r.job.id)!).sort((a, b) => a - b);
    const afterRelease = rssMiB(pid);
    await sleep(5000);
    const settled = await steadyRss(pid);

    const mib = (x: number) => `${x.toFixed(1)} MiB`;
    process.stdout.write(
      [
        `${N} long-polls (GET /v1/jobs/{id}?wait=60) on one relay process, PostgreSQL at ${url.host}`,
        '',
        `RSS, warmed up, no request open (baseline)   ${mib(idle)}`,
        `RSS with ${N} waiters open                    ${mib(holding)}   (+${mib(holding - idle)}, ${(((holding - idle) * 1024) / N).toFixed(1)} KiB a waiter)`,
        `CPU while they wait (${HOLD_S} s)                  ${(holdCpu * 100).toFixed(1)} % of a core`,
        `answered before their job finished            ${earlyAnswers} of ${N}`,
        `released with the finished job                ${released} of ${N}, all within ${((allDone - finishing) / 1000).toFixed(2)} s of the first callback ` +
          `(${((allDone - opened) / 1000).toFixed(1)} s after they were opened, of the 60 s they asked for)`,
        `waiter answered after its callback's answer   p50 ${percentile(lag, 50).toFixed(1)} ms, p99 ${percentile(lag, 99).toFixed(1)} ms, max ${lag[lag.length - 1]!.toFixed(1)} ms (negative: the waiter first)`,
        `RSS right after release                       ${mib(afterRelease)}`,
        `RSS 5 s later                                 ${mib(settled)}   (+${mib(settled - idle)} over the baseline)`,
        '',
      ].join('\n'),
    );
    if (released !== N || earlyAnswers !== 0) process.exitCode = 1;
  } finally {
    relay?.kill('SIGTERM');
    await sleep(300);
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
