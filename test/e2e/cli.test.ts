import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { deliveries, jobs, subscriptions } from '../../src/db/schema.js';
import { applyObservation } from '../../src/jobs/transition.js';
import { createScratchDatabase, dbKind, TEST_DATABASE_URL } from '../helpers/db.js';

const CLI = join(import.meta.dirname, '../../dist/cli.js');

let dir: string;
let env: Record<string, string>;
let drop: (() => Promise<void>) | undefined;
let databaseUrl: string | undefined;
/** The seeded deliveries: sub_cli_a's of job_cli_0 (dead) and job_cli_1 (delivered), sub_cli_b's of job_cli_1 (waiting). */
const dlv = { dead: '', delivered: '', waiting: '' };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const at = (minute: number) => new Date(Date.parse('2026-02-01T09:00:00Z') + minute * 60_000);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'relay-cli-tables-'));
  if (TEST_DATABASE_URL) {
    const scratch = await createScratchDatabase();
    databaseUrl = scratch.url;
    drop = scratch.drop;
    env = { PATH: process.env.PATH ?? '', DATABASE_URL: scratch.url };
  } else {
    env = { PATH: process.env.PATH ?? '', DATA_DIR: join(dir, 'data') };
  }
  // Seeded directly, then closed: on PGlite the CLI needs the data directory to itself.
  const database = await openDatabase(databaseUrl ? { databaseUrl, poolSize: 2 } : { dataDir: join(dir, 'data') });
  try {
    await migrate(database);
    await database.db.insert(jobs).values([
      { id: 'job_cli_0', provider: 'veo-a', model: 'veo-3', status: 'submitted', providerTaskId: 't-0', createdAt: at(0), metadata: { order_id: 'A-17' } },
      { id: 'job_cli_1', provider: 'veo-a', status: 'submitted', providerTaskId: 't-1', createdAt: at(1), metadata: { order_id: 'B-2' } },
      { id: 'job_cli_2', provider: 'sora-long-provider-name', status: 'queued', createdAt: at(2) },
      { id: 'job_cli_3', provider: 'veo-a', status: 'submitted', providerTaskId: 't-3', createdAt: at(3) },
    ]);
    // Before the events, so the outbox creates their deliveries.
    await database.db.insert(subscriptions).values([
      { id: 'sub_cli_a', url: 'https://hooks.example/relay', eventTypes: ['job.succeeded', 'job.failed'], secret: 'whsec_a', createdAt: at(0) },
      { id: 'sub_cli_b', url: 'https://billing.example/hooks/video', eventTypes: ['job.failed'], secret: 'whsec_b', createdAt: at(1) },
    ]);
    await database.db.transaction(async (tx) => {
      await applyObservation(tx, 'job_cli_0', { status: 'processing', progress: 40 });
      await applyObservation(tx, 'job_cli_0', { status: 'succeeded', videoUrls: ['https://videos.example/a.mp4'] });
      await applyObservation(tx, 'job_cli_1', {
        status: 'failed',
        error: { code: 'content_policy', message: 'refused:\nthe prompt was flagged', source: 'provider' },
      });
    });
    const find = async (subscriptionId: string, jobId: string) =>
      (await database.db.select().from(deliveries).where(and(eq(deliveries.subscriptionId, subscriptionId), eq(deliveries.jobId, jobId))))[0]!.id;
    dlv.dead = await find('sub_cli_a', 'job_cli_0');
    dlv.delivered = await find('sub_cli_a', 'job_cli_1');
    dlv.waiting = await find('sub_cli_b', 'job_cli_1');
    await database.db
      .update(deliveries)
      .set({ status: 'dead', attempts: 8, nextAttemptAt: null, lastStatusCode: 500, lastError: 'HTTP 500' })
      .where(eq(deliveries.id, dlv.dead));
    await database.db
      .update(deliveries)
      .set({ status: 'delivered', attempts: 1, nextAttemptAt: null, lastStatusCode: 204, deliveredAt: at(5) })
      .where(eq(deliveries.id, dlv.delivered));
    // Disabled after failing: its pending delivery waits with nothing planned.
    await database.db.update(deliveries).set({ nextAttemptAt: null }).where(eq(deliveries.id, dlv.waiting));
    await database.db.update(subscriptions).set({ disabledAt: at(6), disabledReason: 'failing' }).where(eq(subscriptions.id, 'sub_cli_b'));
  } finally {
    await database.close();
  }
}, 60_000);

afterAll(async () => {
  await drop?.();
  rmSync(dir, { recursive: true, force: true });
});

/** Where each heading starts on the first line must be where each cell starts on every line. */
function expectAligned(table: string, headings: string[]) {
  const [header, ...lines] = table.split('\n');
  const starts = headings.map((h) => header!.indexOf(h));
  expect(starts.every((s, i) => s >= 0 && (i === 0 || s > starts[i - 1]!))).toBe(true);
  for (const line of lines) {
    for (const s of starts.slice(1)) {
      expect(line[s - 1], `"${line}" has a column boundary at ${s}`).toBe(' ');
      expect(line[s], `"${line}" has a cell starting at ${s}`).not.toBe(' ');
    }
  }
}

describe(`the CLI's jobs commands (${dbKind})`, () => {
  it('jobs list prints an aligned table, newest first', async () => {
    const run = await cli('jobs', 'list');
    expect(run.code, run.stderr).toBe(0);
    const table = run.stdout.trimEnd();
    expectAligned(table, ['ID', 'STATUS', 'PROVIDER', 'MODEL', 'CREATED', 'ERROR']);
    const ids = table.split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
    expect(ids).toEqual(['job_cli_3', 'job_cli_2', 'job_cli_1', 'job_cli_0']);
    expect(table).toMatch(/job_cli_1 +failed +veo-a +- +2026-02-01 09:01:00Z +content_policy/);
  });

  it('jobs list filters by status, provider and metadata, and pages with --cursor', async () => {
    const failed = JSON.parse((await cli('jobs', 'list', '--status', 'failed,succeeded', '--provider', 'veo-a', '--json')).stdout);
    expect(failed.data.map((j: { id: string }) => j.id)).toEqual(['job_cli_1', 'job_cli_0']);
    expect(failed.next_cursor).toBeNull();

    const byOrder = JSON.parse((await cli('jobs', 'list', '--metadata', 'order_id=A-17', '--json')).stdout);
    expect(byOrder.data.map((j: { id: string }) => j.id)).toEqual(['job_cli_0']);

    const first = await cli('jobs', 'list', '--limit', '3');
    const cursor = /more: --cursor (\S+)/.exec(first.stdout)?.[1];
    expect(cursor).toBeDefined();
    const rest = JSON.parse((await cli('jobs', 'list', '--limit', '3', '--cursor', cursor!, '--json')).stdout);
    expect(rest).toMatchObject({ data: [{ id: 'job_cli_0' }], next_cursor: null });
  });

  it('jobs get shows the job and its events; --json is the API shape plus the events', async () => {
    const run = await cli('jobs', 'get', 'job_cli_0');
    expect(run.code, run.stderr).toBe(0);
    const [record, events] = run.stdout.trimEnd().split('\n\n');
    expect(record).toMatch(/^id +job_cli_0$/m);
    expect(record).toMatch(/^status +succeeded$/m);
    expect(record).toMatch(/^metadata +order_id=A-17$/m);
    expect(record).toMatch(/^videos +https:\/\/videos\.example\/a\.mp4$/m);
    // Every value starts in the same column.
    expect(new Set(record!.split('\n').map((l) => /^\S+ +/.exec(l)![0].length)).size).toBe(1);
    expectAligned(events!, ['SEQ', 'EVENT', 'AT']);
    expect(events!.split('\n').slice(1).map((l) => l.split(/\s+/)[1])).toEqual(['job.processing', 'job.succeeded']);

    const failed = await cli('jobs', 'get', 'job_cli_1');
    // A message with a newline stays on its line.
    expect(failed.stdout).toMatch(/^error +content_policy \(provider\): refused: the prompt was flagged$/m);

    const json = JSON.parse((await cli('jobs', 'get', 'job_cli_0', '--json')).stdout);
    expect(json).toMatchObject({ id: 'job_cli_0', status: 'succeeded', result: { video_urls: ['https://videos.example/a.mp4'] } });
    expect(json.events.map((e: { type: string }) => e.type)).toEqual(['job.processing', 'job.succeeded']);
  });

  it('exit codes: 1 for what does not exist, 2 for a command or argument that is wrong', async () => {
    const missing = await cli('jobs', 'get', 'job_nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('job job_nope not found');

    for (const args of [
      ['jobs', 'list', '--status', 'finished'],
      ['jobs', 'list', '--limit', '0'],
      ['jobs', 'list', '--metadata', 'no-equals-sign'],
      ['jobs', 'list', '--cursor', 'not-a-cursor'],
      ['jobs', 'list', '--colour'],
      ['jobs', 'get'],
      ['jobs', 'delete', 'job_cli_0'],
      [],
    ]) {
      const run = await cli(...args);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(2);
    }
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('jobs list');
  });

  it('keys list is a table too', async () => {
    expect((await cli('keys', 'create', '--name', 'ops-dashboard', '--scopes', 'jobs:read')).code).toBe(0);
    const run = await cli('keys', 'list');
    expect(run.code).toBe(0);
    expectAligned(run.stdout.trimEnd(), ['ID', 'PREFIX', 'NAME', 'SCOPES', 'CREATED', 'LAST USED', 'REVOKED']);
    expect(run.stdout).toMatch(/ops-dashboard +jobs:read +/);
  });
});

describe(`the CLI's subscription and delivery commands (${dbKind})`, () => {
  it('subscriptions list prints an aligned table, newest first; --json is the API shape, without secrets', async () => {
    const run = await cli('subscriptions', 'list');
    expect(run.code, run.stderr).toBe(0);
    const table = run.stdout.trimEnd();
    expectAligned(table, ['ID', 'URL', 'STATE', 'EVENTS', 'CREATED']);
    const lines = table.split('\n').slice(1);
    expect(lines[0]).toMatch(/^sub_cli_b +https:\/\/billing\.example\/hooks\/video +disabled \(failing\) +job\.failed +2026-02-01 09:01:00Z$/);
    expect(lines[1]).toMatch(/^sub_cli_a +https:\/\/hooks\.example\/relay +enabled +job\.succeeded,job\.failed +2026-02-01 09:00:00Z$/);

    const json = JSON.parse((await cli('subscriptions', 'list', '--json')).stdout);
    expect(json.next_cursor).toBeNull();
    expect(json.data).toMatchObject([
      { id: 'sub_cli_b', enabled: false, disabled_reason: 'failing', event_types: ['job.failed'] },
      { id: 'sub_cli_a', enabled: true, disabled_reason: null },
    ]);
    expect(JSON.stringify(json)).not.toContain('whsec_');

    const first = await cli('subscriptions', 'list', '--limit', '1');
    expect(first.stdout).toContain('more: --cursor sub_cli_b');
  });

  it('deliveries list prints an aligned table and filters by subscription, job and status', async () => {
    const run = await cli('deliveries', 'list');
    expect(run.code, run.stderr).toBe(0);
    const table = run.stdout.trimEnd();
    expectAligned(table, ['ID', 'STATUS', 'EVENT', 'JOB', 'TARGET', 'ATTEMPTS', 'LAST', 'NEXT', 'CREATED']);
    expect(table).toContain(`${dlv.dead}  dead `);
    expect(table).toMatch(new RegExp(`^${dlv.dead} +dead +job\\.succeeded +job_cli_0 +sub_cli_a +8 +500 +- +`, 'm'));
    expect(table).toMatch(new RegExp(`^${dlv.waiting} +pending +job\\.failed +job_cli_1 +sub_cli_b +0 +- +- +`, 'm'));

    const ids = async (...args: string[]) => {
      const out = await cli('deliveries', 'list', ...args, '--json');
      expect(out.code, out.stderr).toBe(0);
      return (JSON.parse(out.stdout).data as { id: string }[]).map((d) => d.id).sort();
    };
    expect(await ids('--subscription', 'sub_cli_a')).toEqual([dlv.dead, dlv.delivered].sort());
    expect(await ids('--job', 'job_cli_1')).toEqual([dlv.delivered, dlv.waiting].sort());
    expect(await ids('--status', 'dead')).toEqual([dlv.dead]);
    expect(await ids('--status', 'pending,delivered', '--subscription', 'sub_cli_b')).toEqual([dlv.waiting]);

    const page = JSON.parse((await cli('deliveries', 'list', '--status', 'dead', '--json')).stdout);
    expect(page).toMatchObject({ data: [{ id: dlv.dead, job_id: 'job_cli_0', status: 'dead', attempts: 8, last_status_code: 500 }], next_cursor: null });
    const first = await cli('deliveries', 'list', '--limit', '2');
    expect(first.stdout).toMatch(/more: --cursor dlv_/);

    for (const args of [['--status', 'failed'], ['--limit', '500'], ['extra']]) {
      const bad = await cli('deliveries', 'list', ...args);
      expect(bad.code, `${args.join(' ')}: ${bad.stderr}`).toBe(2);
    }
  });

  it('deliveries retry makes a dead delivery pending and due now; 1 when it does not exist or is refused', async () => {
    // On PostgreSQL the retry wakes the delivery workers of any running relay.
    const listener = databaseUrl ? postgres(databaseUrl, { max: 1, onnotice: () => {} }) : undefined;
    let woken = 0;
    await listener?.listen('relay_deliveries', () => woken++);
    try {
      const run = await cli('deliveries', 'retry', dlv.dead);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout.trim()).toBe(`queued ${dlv.dead} again: pending, due now`);
      const [retried] = JSON.parse((await cli('deliveries', 'list', '--status', 'pending', '--subscription', 'sub_cli_a', '--json')).stdout).data;
      expect(retried).toMatchObject({ id: dlv.dead, status: 'pending', attempts: 8 });
      expect(Date.parse(retried.next_attempt_at)).toBeLessThanOrEqual(Date.now());
      if (listener) await expect.poll(() => woken).toBeGreaterThan(0);

      const json = JSON.parse((await cli('deliveries', 'retry', dlv.delivered, '--json')).stdout);
      expect(json).toMatchObject({ id: dlv.delivered, status: 'pending' });
    } finally {
      await listener?.end();
    }

    const missing = await cli('deliveries', 'retry', 'dlv_nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('delivery dlv_nope not found');

    const disabled = await cli('deliveries', 'retry', dlv.waiting);
    expect(disabled.code).toBe(1);
    expect(disabled.stderr).toContain('subscription sub_cli_b is disabled');

    expect((await cli('deliveries', 'retry')).code).toBe(2);
  });
});
