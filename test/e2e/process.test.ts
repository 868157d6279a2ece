import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbKind } from '../helpers/db.js';
import { databaseEnv, MAIN, type Relay, startRelay, waitHealthy } from '../helpers/process.js';
import { type Emulator, startEmulator } from '../../src/emulators/index.js';
import { aivideoapiDocs, type FakeAivideoapi, startFakeAivideoapi } from '../helpers/fake-aivideoapi.js';
import { freePort } from '../../src/http/free-port.js';

describe(`the built service as a real process (${dbKind})`, () => {
  let fake: FakeAivideoapi;
  let dir: string;
  let env: Record<string, string>;
  let base: string;
  let dropDb: (() => Promise<void>) | undefined;
  const running: Relay[] = [];

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error('dist/main.js is missing: run `npm run build` (npm test does it first)');
    fake = await startFakeAivideoapi();
    dir = mkdtempSync(join(tmpdir(), 'relay-e2e-'));
    const configPath = join(dir, 'relay.json');
    writeFileSync(
      configPath,
      JSON.stringify({ providers: { veo: { kind: 'aivideoapi', base_url: fake.baseUrl, api_key: '${VEO_KEY}' } } }),
    );
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const data = await databaseEnv(dir);
    dropDb = data.drop;
    env = { PORT: String(port), HOST: '127.0.0.1', RELAY_CONFIG: configPath, VEO_KEY: fake.apiKey, PUBLIC_BASE_URL: base, ...data.env };
  });

  afterAll(async () => {
    for (const r of running) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    await Promise.all(running.map((r) => r.exited));
    await fake?.close();
    await dropDb?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function start(): Relay {
    const r = startRelay(env);
    running.push(r);
    return r;
  }

  it('serves, prints a first admin key once, takes a callback, and keeps everything across kill -9', async () => {
    const first = start();
    await waitHealthy(base, first);
    const key = /crk_[\w-]{43}/.exec(first.stderr())?.[0];
    expect(key, 'the bootstrap admin key is printed').toBeDefined();
    const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

    const tracked = await fetch(`${base}/v1/jobs/track`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ provider: 'veo', provider_task_id: 'e2e-task-1' }),
    });
    expect(tracked.status).toBe(201);
    const job = (await tracked.json()) as { id: string };

    const providers = (await (await fetch(`${base}/v1/providers`, { headers: auth })).json()) as { data: { callback_url: string }[] };
    const callbackUrl = providers.data[0]!.callback_url;
    expect(callbackUrl.startsWith(`${base}/callbacks/veo/`)).toBe(true);

    fake.tasks.set('e2e-task-1', aivideoapiDocs.completed('e2e-task-1'));
    const cb = await fetch(callbackUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-event': 'task.completed', 'x-task-id': 'e2e-task-1' },
      body: JSON.stringify(aivideoapiDocs.completed('e2e-task-1')),
    });
    expect(cb.status).toBe(200);

    first.proc.kill('SIGKILL');
    await first.exited;

    const second = start();
    await waitHealthy(base, second);
    expect(second.stderr()).not.toMatch(/crk_/);
    const after = (await (await fetch(`${base}/v1/jobs/${job.id}`, { headers: auth })).json()) as Record<string, any>;
    expect(after.status).toBe('succeeded');
    expect(after.result.video_urls).toHaveLength(1);
    const receipts = (await (await fetch(`${base}/v1/jobs/${job.id}/callbacks`, { headers: auth })).json()) as { data: any[] };
    expect(receipts.data.map((r) => r.verdict)).toEqual(['applied']);
    expect(receipts.data[0].source_address).toMatch(/127\.0\.0\.1/);

    if (dbKind === 'pglite') {
      // A second process on the same data directory is turned away with a clear message.
      const intruder = startRelay({ ...env, PORT: String(await freePort()) });
      running.push(intruder);
      expect(await intruder.exited).toBe(1);
      expect(intruder.stderr()).toMatch(/DATA_DIR .* is in use by another relay process/);
    }

    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it('a bad configuration stops start-up with a message naming the variable', async () => {
    const bad = startRelay({ ...env, PORT: 'not-a-port' });
    expect(await bad.exited).toBe(1);
    expect(bad.stderr()).toMatch(/PORT/);
  });
});

describe(`a relay killed while it holds poll leases (${dbKind})`, () => {
  let emulator: Emulator;
  let dir: string;
  let dropDb: (() => Promise<void>) | undefined;
  const running: Relay[] = [];

  afterAll(async () => {
    for (const r of running) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    await Promise.all(running.map((r) => r.exited));
    await emulator?.close();
    await dropDb?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('after kill -9 and a restart, its jobs are polled again once the lease has run out', async () => {
    emulator = await startEmulator('video-generations', { durationMs: 2000 });
    dir = mkdtempSync(join(tmpdir(), 'relay-lease-'));
    const configPath = join(dir, 'relay.json');
    const timeoutS = 2;
    const leaseMs = timeoutS * 2000 + 5000; // the poll worker's lease for this timeout
    writeFileSync(
      configPath,
      JSON.stringify({
        providers: {
          vg: {
            kind: 'video-generations',
            base_url: emulator.baseUrl,
            api_key: emulator.apiKey,
            timeout_s: timeoutS,
            poll: { initial_delay_s: 0.05, interval_s: 0.1, max_interval_s: 0.2, max_age_s: 600, callback_grace_s: 1 },
          },
        },
      }),
    );
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const data = await databaseEnv(dir);
    dropDb = data.drop;
    const env = { PORT: String(port), HOST: '127.0.0.1', RELAY_CONFIG: configPath, RELAY_ADMIN_KEY: 'lease-test-admin-key', PUBLIC_BASE_URL: base, ...data.env };
    const auth = { authorization: 'Bearer lease-test-admin-key', 'content-type': 'application/json' };

    const first = startRelay(env);
    running.push(first);
    await waitHealthy(base, first);
    const res = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ provider: 'vg', model: 'veo3.1-video-720p', prompt: 'lease' }) });
    const { id } = (await res.json()) as { id: string };
    // Every status answer now takes 1.5 s: the first poll will be in flight when the relay dies.
    emulator.behaviour.latencyMs = 1500;
    let job: any;
    do {
      job = await (await fetch(`${base}/v1/jobs/${id}`, { headers: auth })).json();
    } while (job.status === 'queued');
    await new Promise((r) => setTimeout(r, 400));
    const killedAt = Date.now();
    first.proc.kill('SIGKILL');
    await first.exited;
    emulator.behaviour.latencyMs = 0;

    const second = startRelay(env);
    running.push(second);
    await waitHealthy(base, second);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      job = await (await fetch(`${base}/v1/jobs/${id}`, { headers: auth })).json();
      if (job.status === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(job.status).toBe('succeeded');
    // Only the dead relay's request was sent before its lease ran out; the next came after it.
    const polls = emulator.requests.filter((r) => r.method === 'GET' && r.path.endsWith(job.provider_task_id)).map((r) => r.at);
    const afterKill = polls.filter((at) => at > killedAt);
    expect(afterKill.length).toBeGreaterThan(0);
    expect(Math.min(...afterKill) - killedAt).toBeGreaterThanOrEqual(leaseMs - 1500);
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 60_000);
});

describe(`the CLI (${dbKind})`, () => {
  it('creates a key, lists and gets jobs, and answers with exit codes that mean something', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-cli-'));
    const data = await databaseEnv(dir);
    const env = { PATH: process.env.PATH ?? '', ...data.env };
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const proc = spawn(process.execPath, [join(import.meta.dirname, '../../dist/cli.js'), ...args], { env });
        let stdout = '';
        let stderr = '';
        proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        proc.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    try {
      const created = await cli('keys', 'create', '--name', 'ops', '--scopes', 'jobs:read', '--json');
      expect(created.code).toBe(0);
      expect(JSON.parse(created.stdout)).toMatchObject({ name: 'ops', scopes: ['jobs:read'], key: expect.stringMatching(/^crk_/) });
      const listed = await cli('keys', 'list', '--json');
      expect(JSON.parse(listed.stdout)[0]).not.toHaveProperty('key');
      expect((await cli('jobs', 'list', '--json')).stdout.trim()).toBe('{"data":[],"next_cursor":null}');
      const missing = await cli('jobs', 'get', 'job_nope');
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/not found/);
      expect((await cli('keys', 'create', '--name', 'x', '--scopes', 'root')).code).toBe(2);
      expect((await cli('nonsense')).code).toBe(2);
    } finally {
      await data.drop?.();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
