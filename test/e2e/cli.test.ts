import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { jobs } from '../../src/db/schema.js';
import { applyObservation } from '../../src/jobs/transition.js';
import { createScratchDatabase, dbKind, TEST_DATABASE_URL } from '../helpers/db.js';

const CLI = join(import.meta.dirname, '../../dist/cli.js');

let dir: string;
let env: Record<string, string>;
let drop: (() => Promise<void>) | undefined;

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
  let databaseUrl: string | undefined;
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
    await database.db.transaction(async (tx) => {
      await applyObservation(tx, 'job_cli_0', { status: 'processing', progress: 40 });
      await applyObservation(tx, 'job_cli_0', { status: 'succeeded', videoUrls: ['https://videos.example/a.mp4'] });
      await applyObservation(tx, 'job_cli_1', {
        status: 'failed',
        error: { code: 'content_policy', message: 'refused:\nthe prompt was flagged', source: 'provider' },
      });
    });
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
