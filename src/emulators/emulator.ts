import { createCipheriv, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProviderKind } from '../config.js';

/**
 * The shared half of the provider emulators: one loopback HTTP server per emulator, a task clock
 * (a task's state is a function of the time, so polling sees it move), the misbehaviour knobs tests
 * turn, and the callback sender. Each kind's file supplies only its paths and document shapes.
 */

export interface EmulatorOptions {
  /** Requests without `Authorization: Bearer <apiKey>` get 401. Default 'sk-emulator'. */
  apiKey?: string;
  /** toapis: the HMAC secret; openai-videos: a `whsec_` Standard Webhooks secret. */
  webhookSecret?: string;
  /** openai-videos only: where Standard Webhooks go (its request has no callback_url). */
  webhookUrl?: string;
  /** Time from submit to finished, default 300; processing starts at a third of it. */
  durationMs?: number;
  /** Default: 'fail' when the prompt contains "FAIL", else 'succeed'. */
  outcome?: (submitBody: Record<string, unknown>) => 'succeed' | 'fail';
  /** Delays of the re-sends after a callback got a non-2xx or no answer; aivideoapi documents +3 min, +10 min. */
  callbackRetryDelaysMs?: number[];
  /** How long one callback POST may take before it counts as unanswered. Default 10 s. */
  callbackTimeoutMs?: number;
}

export interface EmulatedTask {
  id: string;
  /** The kind's own vocabulary, read from the clock on every access. */
  readonly status: string;
  readonly progress: number;
  createdAt: number;
  finishAt: number;
  outcome: 'succeed' | 'fail';
  callbackUrl: string | null;
  submitBody: Record<string, unknown>;
}

export interface EmulatorBehaviour {
  /** Added before every response. */
  latencyMs: number;
  /** Answer `status` to the next `count` matching requests without creating a task; count decrements. */
  failNext: { status: number; count: number; retryAfterS?: number; on?: 'submit' | 'status' | 'any' } | null;
  /** Accept a submit (the task exists and is counted) but never answer it. */
  stallSubmit: boolean;
  callbacks: 'normal' | 'none' | 'duplicate' | 'out-of-order';
  /**
   * While true the emulator stops listening, so new connections are refused (ECONNREFUSED: the
   * request provably never left), and open ones are destroyed.
   */
  refuseConnections: boolean;
}

export interface CallbackRecord {
  url: string;
  /** The receiver's HTTP status, or null when it did not answer. */
  status: number | null;
  body: string;
  at: number;
}

export interface Emulator {
  kind: ProviderKind;
  baseUrl: string;
  apiKey: string;
  behaviour: EmulatorBehaviour;
  tasks: Map<string, EmulatedTask>;
  /** Every request answered (status 0: a stalled submit, never answered). */
  requests: { method: string; path: string; at: number; status: number }[];
  /** Accepted submits, i.e. tasks created. */
  submits(): number;
  callbacksSent: CallbackRecord[];
  /** Jumps a task to its end and fires its callback. */
  finishNow(taskId: string, outcome?: 'succeed' | 'fail'): void;
  /** video-generations only: make a task report `unknown` (or stop doing so). */
  setUnknown?(taskId: string, on: boolean): void;
  /** Stops the server, its timers and sockets; idempotent. */
  close(): Promise<void>;
}

/** Where a task is in its life, before a kind names it. */
export type Phase = 'initial' | 'processing' | 'succeeded' | 'failed' | 'unknown';

export interface DocContext {
  baseUrl: string;
  now: number;
}

/** One HTTP answer: a JSON document or raw bytes. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
  bytes?: Buffer;
}

/** A callback to POST; headers are made per attempt because they carry the send time. */
export interface CallbackMessage {
  url: string;
  body: string;
  headers(timestampS: number): Record<string, string>;
}

/** What a kind's file supplies. */
export interface KindDefinition {
  kind: ProviderKind;
  submitPath: string;
  /** Matches the status path; group 1 is the task id. */
  statusPath: RegExp;
  /** The kind's name for each phase; `unknown` only where the provider has one. */
  statuses: Record<Exclude<Phase, 'unknown'>, string> & { unknown?: string };
  newTaskId(submitBody: Record<string, unknown>): string;
  /** A reason to refuse the body beyond a missing `model` (checked by the core), or null. */
  checkSubmit(submitBody: Record<string, unknown>): string | null;
  callbackUrl(submitBody: Record<string, unknown>, options: EmulatorOptions): string | null;
  submitAnswer(task: EmulatedTask, ctx: DocContext): unknown;
  statusDocument(task: EmulatedTask, phase: Phase, ctx: DocContext): unknown;
  /** The kind's error body for an HTTP status and a code from `errorCodes`. */
  errorBody(status: number, code: string, message: string): unknown;
  /** Further authenticated reads of a task (openai-videos' content); group 1 is the task id. */
  reads?: { path: RegExp; reply(task: EmulatedTask, phase: Phase, req: IncomingMessage): Reply }[];
  /** The terminal callback, or (stale) a late 'processing' one; null where the kind has none. */
  callback?(task: EmulatedTask, stale: boolean, options: EmulatorOptions, ctx: DocContext): CallbackMessage | null;
}

/** The error codes the emulators answer with, by HTTP status (seed 001's table). */
export const errorCodes: Record<number, string> = {
  400: 'invalid_request',
  401: 'invalid_api_key',
  402: 'insufficient_credits',
  403: 'ip_not_allowed',
  404: 'not_found',
  416: 'range_not_satisfiable',
  429: 'rate_limit_exceeded',
  500: 'internal_error',
  503: 'upstream_error',
};

/** The `type` seed 001 pairs with each code; toapis and video-generations use the same shape. */
export const errorTypes: Record<string, string> = {
  invalid_request: 'invalid_request_error',
  invalid_api_key: 'authentication_error',
  insufficient_credits: 'billing_error',
  ip_not_allowed: 'permission_error',
  not_found: 'invalid_request_error',
  task_not_found: 'invalid_request_error',
  range_not_satisfiable: 'invalid_request_error',
  rate_limit_exceeded: 'rate_limit_error',
  internal_error: 'api_error',
  upstream_error: 'upstream_error',
};

export const unixS = (ms: number) => Math.floor(ms / 1000);

export function phaseOf(task: EmulatedTask, now: number): Exclude<Phase, 'unknown'> {
  if (now >= task.finishAt) return task.outcome === 'succeed' ? 'succeeded' : 'failed';
  return now < processingStart(task) ? 'initial' : 'processing';
}

function processingStart(task: EmulatedTask): number {
  return task.createdAt + (task.finishAt - task.createdAt) / 3;
}

/** 0 before processing, 1–99 along processing (99 for a stale 'processing' sent after the end), 100 when done. */
export function progressFor(task: EmulatedTask, phase: Phase, now: number): number {
  if (phase === 'succeeded' || phase === 'failed') return 100;
  if (phase !== 'processing') return 0;
  const start = processingStart(task);
  const share = (now - start) / Math.max(1, task.finishAt - start);
  return Math.min(99, Math.max(1, Math.round(share * 100)));
}

export function statusName(def: KindDefinition, phase: Phase): string {
  return phase === 'unknown' ? (def.statuses.unknown ?? 'unknown') : def.statuses[phase];
}

export function promptOf(body: Record<string, unknown>): string {
  const input = body.input as Record<string, unknown> | undefined;
  const prompt = body.prompt ?? input?.prompt;
  return typeof prompt === 'string' ? prompt : '';
}

/** Public result URLs point back at the emulator, so a demo can actually download them. */
export function fileUrl(ctx: DocContext, taskId: string): string {
  return `${ctx.baseUrl}/files/${encodeURIComponent(taskId)}.mp4`;
}

const VIDEO_SIZE = 64 * 1024;

/** 64 KiB derived from the id (an AES-CTR keystream keyed by its hash), after an `ftyp` box so sniffers see MP4. */
export function fakeVideo(taskId: string): Buffer {
  const ftyp = Buffer.from('000000186674797069736f6d0000020069736f6d6d703431', 'hex');
  const key = createHash('sha256').update(taskId).digest().subarray(0, 16);
  const stream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(VIDEO_SIZE - ftyp.length));
  return Buffer.concat([ftyp, stream]);
}

/** The bytes, or the one range asked for; a malformed or multi-range header is ignored (RFC 9110). */
export function videoReply(bytes: Buffer, range: string | undefined): Reply {
  const headers = { 'content-type': 'video/mp4', 'accept-ranges': 'bytes' };
  const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range.trim()) : null;
  if (!m) return { status: 200, headers, bytes };
  const start = Number(m[1]);
  const end = Math.min(m[2] ? Number(m[2]) : bytes.length - 1, bytes.length - 1);
  if (start >= bytes.length || start > end) {
    return { status: 416, headers: { 'content-range': `bytes */${bytes.length}` }, bytes: Buffer.alloc(0) };
  }
  return {
    status: 206,
    headers: { ...headers, 'content-range': `bytes ${start}-${end}/${bytes.length}` },
    bytes: bytes.subarray(start, end + 1),
  };
}

const FILE_PATH = /^\/files\/([^/]+)\.mp4$/;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function writeReply(res: ServerResponse, reply: Reply): void {
  const bytes = reply.bytes ?? Buffer.from(JSON.stringify(reply.json ?? null));
  res.writeHead(reply.status, {
    ...(reply.bytes ? {} : { 'content-type': 'application/json' }),
    'content-length': String(bytes.length),
    ...reply.headers,
  });
  res.end(bytes);
}

function decodeId(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

type Role = 'submit' | 'status' | 'other';

export async function startKindEmulator(def: KindDefinition, options: EmulatorOptions = {}): Promise<Emulator> {
  const apiKey = options.apiKey ?? 'sk-emulator';
  const durationMs = options.durationMs ?? 300;
  const retryDelays = options.callbackRetryDelaysMs ?? [180_000, 600_000];
  const callbackTimeoutMs = options.callbackTimeoutMs ?? 10_000;
  const decideOutcome = options.outcome ?? ((body) => (promptOf(body).includes('FAIL') ? 'fail' : 'succeed'));

  const timers = new Set<NodeJS.Timeout>();
  const finishTimers = new Map<string, NodeJS.Timeout>();
  const terminalFired = new Set<string>();
  const unknownTasks = new Set<string>();
  const stopCallbacks = new AbortController();
  let submitCount = 0;
  let closed = false;
  let closing: Promise<void> | null = null;
  let refusing = false;
  let port = 0;

  /** Unref'd so a forgotten emulator never holds the process open; tracked so close() clears them. */
  const later = (ms: number, fn: () => void): NodeJS.Timeout => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    t.unref();
    timers.add(t);
    return t;
  };
  const sleep = (ms: number) => (ms > 0 ? new Promise<void>((resolve) => later(ms, resolve)) : Promise.resolve());
  const ctx = (): DocContext => ({ baseUrl: emulator.baseUrl, now: Date.now() });
  const currentPhase = (task: EmulatedTask, now: number): Phase =>
    unknownTasks.has(task.id) ? 'unknown' : phaseOf(task, now);
  const error = (status: number, message: string, code = errorCodes[status] ?? `http_${status}`): Reply => ({
    status,
    json: def.errorBody(status, code, message),
  });

  const server = createServer((req, res) => void answerRequest(req, res));
  server.keepAliveTimeout = 1000;
  // Covers a connection that slips in between the switch and the listener closing.
  server.on('connection', (socket) => {
    if (refusing) socket.destroy();
  });
  server.on('error', () => {
    // Re-listening after refuseConnections can only fail if the port was taken meanwhile; the
    // emulator then keeps refusing, which the test will see.
  });

  function setRefusing(on: boolean): void {
    if (on === refusing || closed) return;
    refusing = on;
    if (on) {
      server.close();
      server.closeAllConnections();
    } else {
      server.listen(port, '127.0.0.1');
    }
  }

  async function post(msg: CallbackMessage): Promise<number | null> {
    const at = Date.now();
    let status: number | null = null;
    try {
      const res = await fetch(msg.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...msg.headers(unixS(at)) },
        body: msg.body,
        redirect: 'manual',
        signal: AbortSignal.any([stopCallbacks.signal, AbortSignal.timeout(callbackTimeoutMs)]),
      });
      status = res.status;
      await res.arrayBuffer().catch(() => undefined);
    } catch {
      status = null;
    }
    emulator.callbacksSent.push({ url: msg.url, status, body: msg.body, at });
    return status;
  }

  /** Sends once now; a failure schedules the re-sends in the background. */
  async function deliver(msg: CallbackMessage, attempt = 0): Promise<void> {
    if (closed) return;
    const status = await post(msg);
    if (status !== null && status >= 200 && status < 300) return;
    const delay = retryDelays[attempt];
    if (delay !== undefined) later(delay, () => void deliver(msg, attempt + 1));
  }

  async function fireTerminal(task: EmulatedTask): Promise<void> {
    if (terminalFired.has(task.id) || !def.callback || !task.callbackUrl) return;
    terminalFired.add(task.id);
    // Read when the task ends, so a test may switch the mode after submitting.
    const mode = emulator.behaviour.callbacks;
    const terminal = mode === 'none' ? null : def.callback(task, false, options, ctx());
    if (!terminal) return;
    // Sequential, so a receiver sees them in the order the mode promises.
    await deliver(terminal);
    if (mode === 'duplicate') await deliver(terminal);
    if (mode === 'out-of-order') {
      const stale = def.callback(task, true, options, ctx());
      if (stale) await deliver(stale);
    }
  }

  function createTask(body: Record<string, unknown>): EmulatedTask {
    const createdAt = Date.now();
    const task: EmulatedTask = {
      id: def.newTaskId(body),
      get status() {
        return statusName(def, currentPhase(task, Date.now()));
      },
      get progress() {
        const now = Date.now();
        return progressFor(task, currentPhase(task, now), now);
      },
      createdAt,
      finishAt: createdAt + durationMs,
      outcome: decideOutcome(body),
      callbackUrl: def.callbackUrl(body, options),
      submitBody: body,
    };
    emulator.tasks.set(task.id, task);
    submitCount++;
    if (task.callbackUrl && def.callback) finishTimers.set(task.id, later(durationMs, () => void fireTerminal(task)));
    return task;
  }

  function roleOf(method: string, path: string): Role {
    if (method === 'POST' && path === def.submitPath) return 'submit';
    if (method === 'GET' && (def.statusPath.test(path) || def.reads?.some((r) => r.path.test(path)))) return 'status';
    return 'other';
  }

  /** Consumes one `failNext` answer when it applies to this request. */
  function takeFailure(role: Role): Reply | null {
    const f = emulator.behaviour.failNext;
    if (!f || f.count <= 0) return null;
    const on = f.on ?? 'any';
    if (on !== 'any' && on !== role) return null;
    f.count--;
    const reply = error(f.status, `emulated failure (HTTP ${f.status})`);
    if (f.retryAfterS !== undefined) reply.headers = { 'retry-after': String(f.retryAfterS) };
    return reply;
  }

  function submit(raw: Buffer): { reply: Reply; task?: EmulatedTask } {
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return { reply: error(400, 'The request body is not valid JSON.') };
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return { reply: error(400, 'The request body must be a JSON object.') };
    }
    const doc = body as Record<string, unknown>;
    if (typeof doc.model !== 'string' || !doc.model) return { reply: error(400, "'model' is required.") };
    const refusal = def.checkSubmit(doc);
    if (refusal) return { reply: error(400, refusal) };
    const task = createTask(doc);
    return { reply: { status: 200, json: def.submitAnswer(task, ctx()) }, task };
  }

  /** The status document or another read of one task; 404 for an unknown path or task. */
  function read(path: string, req: IncomingMessage): Reply {
    const reads = [{ path: def.statusPath, reply: null }, ...(def.reads ?? [])];
    for (const { path: pattern, reply } of reads) {
      const m = pattern.exec(path);
      if (!m) continue;
      const task = emulator.tasks.get(decodeId(m[1]!) ?? '');
      if (!task) return error(404, 'Task not found.', 'task_not_found');
      const now = Date.now();
      const phase = currentPhase(task, now);
      if (reply) return reply(task, phase, req);
      return { status: 200, json: def.statusDocument(task, phase, { baseUrl: emulator.baseUrl, now }) };
    }
    return error(404, `No route for GET ${path}.`);
  }

  async function answerRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const respond = async (reply: Reply) => {
      await sleep(emulator.behaviour.latencyMs);
      emulator.requests.push({ method, path: url, at, status: reply.status });
      if (!closed) writeReply(res, reply);
    };
    try {
      if (refusing) return void req.socket.destroy();
      const raw = await readBody(req);
      // Result files are public URLs, like the providers' CDN links.
      const file = method === 'GET' ? FILE_PATH.exec(path) : null;
      if (file) {
        const task = emulator.tasks.get(decodeId(file[1]!) ?? '');
        if (!task || phaseOf(task, Date.now()) !== 'succeeded') return await respond(error(404, 'File not found.'));
        return await respond(videoReply(fakeVideo(task.id), req.headers.range));
      }
      if (req.headers.authorization !== `Bearer ${apiKey}`) {
        return await respond(error(401, 'Invalid API key.'));
      }
      const role = roleOf(method, path);
      const failure = takeFailure(role);
      if (failure) return await respond(failure);
      if (role === 'submit') {
        const { reply, task } = submit(raw);
        if (task && emulator.behaviour.stallSubmit) {
          // The provider took the job (and the money) but the answer never comes back.
          emulator.requests.push({ method, path: url, at, status: 0 });
          return;
        }
        return await respond(reply);
      }
      await respond(method === 'GET' ? read(path, req) : error(404, `No route for ${method} ${path}.`));
    } catch (err) {
      if (!res.headersSent && !closed) await respond(error(500, `Emulator error: ${(err as Error).message}`));
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;

  const emulator: Emulator = {
    kind: def.kind,
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey,
    behaviour: {
      latencyMs: 0,
      failNext: null,
      stallSubmit: false,
      callbacks: 'normal',
      get refuseConnections() {
        return refusing;
      },
      set refuseConnections(on: boolean) {
        setRefusing(on);
      },
    },
    tasks: new Map(),
    requests: [],
    submits: () => submitCount,
    callbacksSent: [],
    finishNow(taskId, outcome) {
      const task = emulator.tasks.get(taskId);
      if (!task) throw new Error(`${def.kind} emulator: no task ${taskId}`);
      if (outcome) task.outcome = outcome;
      task.finishAt = Math.min(task.finishAt, Date.now());
      const timer = finishTimers.get(taskId);
      if (timer) clearTimeout(timer);
      void fireTerminal(task);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        for (const t of timers) clearTimeout(t);
        timers.clear();
        stopCallbacks.abort();
        server.closeAllConnections();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      });
      return closing;
    },
  };
  if (def.statuses.unknown) {
    emulator.setUnknown = (taskId, on) => {
      if (!emulator.tasks.has(taskId)) throw new Error(`${def.kind} emulator: no task ${taskId}`);
      if (on) unknownTasks.add(taskId);
      else unknownTasks.delete(taskId);
    };
  }
  return emulator;
}
