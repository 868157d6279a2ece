/** Pieces the benchmarks share: scratch databases, child processes, percentiles. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/http/free-port.js';
import postgres from 'postgres';

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** utime + stime of a process, in clock ticks (100/s). */
export function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * CPU ticks used by every PostgreSQL process on this machine so far: the live ones, plus what the
 * postmaster has collected from backends that exited. Differences of two readings are the server's
 * share of a run (the machine's other servers sit idle during benches).
 */
export function postgresTicks(): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    if (stat.slice(open + 1, close) !== 'postgres') continue;
    const f = stat.slice(close + 2).split(' ');
    // utime, stime, and cutime + cstime (children reaped by this process: the postmaster's backends).
    total += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return total;
}

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export interface Scratch {
  url: string;
  drop(): Promise<void>;
}

/** A fresh database on the server of `baseUrl`, dropped (with its connections) by `drop`. */
export async function scratchDatabase(baseUrl: string, prefix = 'relay_bench'): Promise<Scratch> {
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  const name = `${prefix}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  await admin.unsafe(`create database ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

export interface Child {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** A child process whose stdout/stderr are kept (for error messages) and which `stop` ends with SIGTERM. */
export function startChild(command: string, args: string[], env: Record<string, string>, ipc = false): Child {
  let out = '';
  const proc = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  proc.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return {
    proc,
    output: () => out,
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `url` until it answers 2xx. */
export async function waitReady(url: string, child: Child, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null) throw new Error(`process exited early:\n${child.output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not yet listening
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready in ${timeoutMs} ms:\n${child.output()}`);
}

export const now = () => performance.timeOrigin + performance.now();

export interface RelayProcess {
  child: Child;
  base: string;
  stop(): Promise<void>;
}

/**
 * The built relay (`node dist/main.js`) as its own process on `databaseUrl`, with `config` as its
 * config file, ready when this resolves. RELAY_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")
 * is passed to node, to profile it.
 */
export async function startRelayProcess(opts: {
  databaseUrl: string;
  config: unknown;
  secret: string;
  adminKey: string;
}): Promise<RelayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-bench-'));
  const configPath = join(dir, 'relay.json');
  writeFileSync(configPath, JSON.stringify(opts.config));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const nodeArgs = process.env.RELAY_NODE_ARGS ? process.env.RELAY_NODE_ARGS.split(' ') : [];
  const child = startChild(process.execPath, [...nodeArgs, 'dist/main.js'], {
    DATABASE_URL: opts.databaseUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: base,
    RELAY_CONFIG: configPath,
    RELAY_SECRET: opts.secret,
    RELAY_ADMIN_KEY: opts.adminKey,
    LOG_LEVEL: 'warn',
  });
  const stop = async () => {
    await child.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(`${base}/readyz`, child);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, base, stop };
}

