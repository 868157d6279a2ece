/**
 * List-page benchmark (issue 6): what a 50-row `GET /v1/jobs` page costs at 1,000,000 jobs, at the
 * top of the list and near its bottom, unfiltered and with a status or a metadata filter. The
 * same-run baseline is the first page: keyset paging should make the deep page cost the same.
 *
 *   npm run bench:list -- [--jobs 1000000] [--runs 50] [--database-url postgres://…]
 *
 * On a scratch database of the PostgreSQL server (created and dropped here), jobs are inserted with
 * one INSERT … SELECT generate_series, then each page is timed two ways: over HTTP against the relay
 * running as its own process (auth, validation and JSON included), and as the bare `listJobs` call.
 * The deep pages start at a cursor the list itself handed out, found by listing below a time near
 * the bottom. For each query the plan and buffer counts of `EXPLAIN (ANALYZE, BUFFERS)` of the exact
 * SQL `listJobs` sends are printed, to show which index serves it.
 *
 * Last, a what-if: the metadata cases again with a GIN index on `jobs.metadata`, which the schema
 * does not have, to show what one would change.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { createApiKey } from '../src/auth/keys.js';
import { type Db, openDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import * as schema from '../src/db/schema.js';
import type { JobStatus } from '../src/db/schema.js';
import { freePort } from '../src/http/free-port.js';
import { type JobListFilters, listJobs } from '../src/jobs/list.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '50' },
    'database-url': {
      type: 'string',
      default: process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
  },
});
const N = Number(values.jobs);
const RUNS = Number(values.runs);
const PAGE = 50;
/** The jobs are 100 ms apart from this time on; job i (1 = oldest) was created at BASE + i × 100 ms. */
const BASE = Date.parse('2025-01-01T00:00:00Z');
const createdAt = (i: number) => new Date(BASE + i * 100).toISOString();

interface Case {
  name: string;
  statuses?: JobStatus[];
  metadata?: Record<string, string>;
  /**
   * Where the deep page starts: below the job this many from the oldest, so that at least two pages
   * of matches lie below it. Absent: no deep page (a filter matching one job has no depth).
   */
  below?: number;
}

const cases: Case[] = [
  { name: 'no filter', below: 1_000 },
  { name: 'status=failed (15 %)', statuses: ['failed'], below: 1_000 },
  { name: 'status=queued (1 %)', statuses: ['queued'], below: 10_000 },
  { name: 'metadata[team]=red (10 %)', metadata: { team: 'red' }, below: 2_000 },
  { name: `metadata[order_id] (1 job in ${N.toLocaleString('en')})`, metadata: { order_id: `O-${Math.ceil(N / 2)}` } },
];

const teams = ['red', 'blue', 'green', 'amber', 'violet', 'teal', 'rose', 'slate', 'lime', 'cyan'];

/** Realistic rows: a prompt in `input`, a result or an error where the status has one, two metadata keys. */
async function insertJobs(sql: postgres.Sql, n: number) {
  const chunk = 200_000;
  for (let from = 1; from <= n; from += chunk) {
    const to = Math.min(n, from + chunk - 1);
    await sql`
      insert into jobs (id, provider, model, provider_task_id, status, progress, input, result, error, metadata,
                        created_at, submitted_at, updated_at, completed_at)
      select 'job_bench_' || lpad(i::text, 8, '0'),
             (array['veo-a', 'sora-b', 'kling-c', 'toapis-d'])[1 + i % 4],
             'veo-3',
             'task-' || i,
             s.status,
             case when s.status = 'succeeded' then 100 end,
             jsonb_build_object('prompt', 'A drone shot over mountains at sunset, slow push-in, golden light, order ' || i,
                                'resolution', '720p', 'aspect_ratio', '16:9'),
             case when s.status = 'succeeded' then jsonb_build_object(
               'video_urls', jsonb_build_array('https://videos.example/' || i || '.mp4'),
               'raw', jsonb_build_object('id', 'task-' || i, 'status', 'completed')) end,
             case when s.status = 'failed' then '{"code":"content_policy","message":"the prompt was refused","source":"provider"}'::jsonb end,
             jsonb_build_object('order_id', 'O-' || i, 'team', (${teams}::text[])[1 + i % 10]),
             s.t, s.t + interval '2 s', s.t + interval '90 s',
             case when s.status in ('succeeded', 'failed', 'canceled', 'expired') then s.t + interval '90 s' end
      from generate_series(${from}::int, ${to}::int) as i,
           lateral (select ${new Date(BASE).toISOString()}::timestamptz + i * interval '100 ms' as t,
                           case when i % 100 < 70 then 'succeeded' when i % 100 < 85 then 'failed'
                                when i % 100 < 90 then 'canceled' when i % 100 < 95 then 'expired'
                                when i % 100 < 98 then 'processing' when i % 100 < 99 then 'submitted'
                                else 'queued' end as status) as s`;
    process.stdout.write(`  ${to.toLocaleString('en')} jobs\r`);
  }
  process.stdout.write('\n');
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** `runs` timings of `fn` in ms, after a few unmeasured ones; fewer when one run is slow. */
async function timeRuns(fn: () => Promise<unknown>): Promise<{ p50: number; p99: number; runs: number }> {
  const t0 = performance.now();
  await fn();
  const first = performance.now() - t0;
  const runs = Math.max(5, Math.min(RUNS, Math.floor(15_000 / Math.max(first, 0.01))));
  for (let i = 0; i < Math.min(3, runs); i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    ms.push(performance.now() - start);
  }
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), runs };
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Scan Direction'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Shared Hit Blocks': number;
  'Shared Read Blocks': number;
  Plans?: PlanNode[];
}

/** `Limit ← Index Scan Backward (jobs_created_idx) 51 rows, 290 filtered out`, and the buffer counts. */
function summarisePlan(plan: { Plan: PlanNode; 'Execution Time': number }): string {
  const steps: string[] = [];
  const walk = (node: PlanNode) => {
    const scan = node['Index Name'] ? ` ${node['Scan Direction'] === 'Backward' ? 'Backward ' : ''}(${node['Index Name']})` : '';
    const removed = node['Rows Removed by Filter'] ? `, ${node['Rows Removed by Filter']} filtered out` : '';
    steps.push(`${node['Node Type']}${scan} ${node['Actual Rows'] * node['Actual Loops']} rows${removed}`);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(plan.Plan);
  const top = plan.Plan;
  return `${steps.join(' ← ')}; buffers: ${top['Shared Hit Blocks']} hit, ${top['Shared Read Blocks']} read; ${plan['Execution Time'].toFixed(2)} ms in the server`;
}

function queryString(c: Case, cursor?: string): string {
  const p = new URLSearchParams({ limit: String(PAGE) });
  for (const s of c.statuses ?? []) p.append('status', s);
  for (const [k, v] of Object.entries(c.metadata ?? {})) p.append(`metadata[${k}]`, v);
  if (cursor) p.set('cursor', cursor);
  return p.toString();
}

async function main() {
  const admin = postgres(values['database-url']!, { max: 1, onnotice: () => {} });
  const dbName = `relay_bench_list_${Date.now()}`;
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(values['database-url']!);
  url.pathname = `/${dbName}`;
  const database = await openDatabase({ databaseUrl: url.toString(), poolSize: 4 });
  const sql = postgres(url.toString(), { max: 2, onnotice: () => {} });
  let relay: ChildProcess | undefined;
  try {
    await migrate(database);
    process.stdout.write(`inserting ${N.toLocaleString('en')} jobs on ${url.host} …\n`);
    let t = performance.now();
    await insertJobs(sql, N);
    const insertS = (performance.now() - t) / 1000;
    t = performance.now();
    await sql.unsafe('vacuum analyze jobs');
    const [size] = await sql<{ table: string; index: string }[]>`
      select pg_size_pretty(pg_table_size('jobs')) as table, pg_size_pretty(pg_relation_size('jobs_created_idx')) as index`;
    process.stdout.write(
      `inserted in ${insertS.toFixed(1)} s (${Math.round(N / insertS).toLocaleString('en')} rows/s), vacuum analyze ${((performance.now() - t) / 1000).toFixed(1)} s; ` +
        `table ${size!.table}, jobs_created_idx ${size!.index}\n`,
    );

    const { key } = await createApiKey(database.db, { name: 'bench', scopes: ['jobs:read'] });
    const port = await freePort();
    relay = spawn(process.execPath, ['dist/main.js'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: url.toString(), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/readyz`)).ok) break;
      } catch {}
      if (i > 300) throw new Error('relay did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const getPage = async (qs: string) => {
      const res = await fetch(`${base}/v1/jobs?${qs}`, { headers: { authorization: `Bearer ${key}` } });
      const body = await res.text();
      if (!res.ok) throw new Error(`GET /v1/jobs?${qs}: ${res.status} ${body}`);
      return JSON.parse(body) as { data: unknown[] };
    };

    // The exact SQL listJobs sends, for EXPLAIN.
    let captured: { query: string; params: unknown[] } | null = null;
    const spy = drizzle({ client: sql, schema, logger: { logQuery: (query, params) => (captured = { query, params }) } }) as unknown as Db;
    const explain = async (filters: JobListFilters) => {
      await listJobs(spy, filters);
      const { query, params } = captured!;
      const [row] = await sql.unsafe(`explain (analyze, buffers, format json) ${query}`, params as postgres.ParameterOrJSON<never>[]);
      return summarisePlan((row as unknown as { 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] })['QUERY PLAN'][0]);
    };

    const measure = async (c: Case) => {
      const filters = { statuses: c.statuses, metadata: c.metadata, limit: PAGE };
      const pages: { page: string; filters: JobListFilters }[] = [{ page: 'first page', filters }];
      if (c.below) {
        // A cursor the list hands out near its bottom: list below an old job, take the cursor.
        const below = await listJobs(database.db, { ...filters, createdBefore: createdAt(c.below) });
        if (!below.next_cursor) throw new Error(`${c.name}: no cursor near the bottom`);
        const [row] = await sql<{ n: number }[]>`select count(*)::int as n from jobs where created_at >= ${createdAt(c.below)}::timestamptz`;
        pages.push({ page: `deep page (below row ${(row!.n + PAGE).toLocaleString('en')})`, filters: { ...filters, cursor: below.next_cursor } });
      }
      for (const p of pages) {
        const qs = queryString(c, p.filters.cursor);
        const got = await getPage(qs);
        const http = await timeRuns(() => getPage(qs));
        const direct = await timeRuns(() => listJobs(database.db, p.filters));
        process.stdout.write(
          `${`${c.name}, ${p.page}`.padEnd(62)} ${String(got.data.length).padStart(4)} rows  ` +
            `HTTP p50 ${http.p50.toFixed(2).padStart(7)} p99 ${http.p99.toFixed(2).padStart(7)} ms   ` +
            `listJobs p50 ${direct.p50.toFixed(2).padStart(7)} p99 ${direct.p99.toFixed(2).padStart(7)} ms  (${http.runs}/${direct.runs} runs)\n` +
            `    plan: ${await explain(p.filters)}\n`,
        );
      }
    };

    process.stdout.write(`\n50-row pages of GET /v1/jobs at ${N.toLocaleString('en')} jobs (baseline: each query's first page)\n\n`);
    for (const c of cases) await measure(c);

    process.stdout.write('\nwhat if: the metadata cases with a GIN index on jobs.metadata (not in the schema)\n\n');
    t = performance.now();
    await sql.unsafe('create index jobs_metadata_gin on jobs using gin (metadata jsonb_path_ops)');
    await sql.unsafe('analyze jobs');
    process.stdout.write(`(index built in ${((performance.now() - t) / 1000).toFixed(1)} s)\n`);
    for (const c of cases.filter((c) => c.metadata)) await measure(c);
  } finally {
    relay?.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await sql.end();
    await database.close();
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

await main();
