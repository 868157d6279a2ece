import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createScratchDatabase, TEST_DATABASE_URL } from './db.js';

export const MAIN = join(import.meta.dirname, '../../dist/main.js');

/** Where a relay process keeps its data: a scratch database on the test server, or a PGlite directory under `dir`. */
export async function databaseEnv(dir: string): Promise<{ env: Record<string, string>; drop?: () => Promise<void> }> {
  if (!TEST_DATABASE_URL) return { env: { DATA_DIR: join(dir, 'data') } };
  const scratch = await createScratchDatabase();
  return { env: { DATABASE_URL: scratch.url }, drop: scratch.drop };
}

export interface Relay {
  proc: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

export function startRelay(env: Record<string, string>): Relay {
  let err = '';
  const proc = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, stderr: () => err, exited };
}

export async function waitHealthy(base: string, relay: Relay, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (relay.proc.exitCode !== null) throw new Error(`relay exited early: ${relay.stderr()}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`relay not healthy within ${timeoutMs} ms: ${relay.stderr()}`);
}
