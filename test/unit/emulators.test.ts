import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProviderKind } from '../../src/config.js';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulators/index.js';

// Emulators and receivers started by a test, closed after it whatever happened.
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function emulate(kind: ProviderKind, options: EmulatorOptions = {}): Promise<Emulator> {
  const emu = await startEmulator(kind, { durationMs: 60, ...options });
  closers.push(() => emu.close());
  return emu;
}

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A callback receiver on loopback that answers each request with the next status of `answers` (the last one repeats). */
async function startReceiver(answers: number[] = [200]) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(answers[Math.min(received.length, answers.length) - 1]!).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

function call(emu: Emulator, method: string, path: string, body?: unknown, init: RequestInit = {}) {
  return fetch(`${emu.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${emu.apiKey}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    ...init,
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

type Doc = Record<string, any>;

/** What differs between kinds: how to submit, where to poll, and what the ends look like. */
interface KindCase {
  kind: ProviderKind;
  submitPath: string;
  body(prompt: string, callbackUrl?: string): Record<string, unknown>;
  taskIdOf(answer: Doc): string;
  statusPath(id: string): string;
  statuses: { initial: string; processing: string; succeeded: string; failed: string };
  checkSucceeded(doc: Doc): void;
  checkFailed(doc: Doc): void;
  /** Reads the error code out of the kind's error body. */
  errorCode(doc: Doc): unknown;
}

const kindCases: KindCase[] = [
  {
    kind: 'aivideoapi',
    submitPath: '/v1/videos/generations',
    body: (prompt, callbackUrl) => ({ model: 'veo-3', callback_url: callbackUrl, input: { prompt, resolution: '1080p' } }),
    taskIdOf: (a) => {
      expect(a).toMatchObject({ code: 200, msg: 'success' });
      return a.data.taskId;
    },
    statusPath: (id) => `/v1/tasks/${id}`,
    statuses: { initial: 'pending', processing: 'processing', succeeded: 'completed', failed: 'failed' },
    checkSucceeded: (d) => {
      expect(d).toMatchObject({ model: 'veo-3', progress: 100, output: { metadata: { resolution: '1080p' } } });
      expect(d.output.urls).toHaveLength(1);
      expect(d.completed_at).toBeGreaterThanOrEqual(d.created_at);
    },
    checkFailed: (d) => expect(d.error).toEqual({ code: 'upstream_error', message: 'Video generation failed' }),
    errorCode: (d) => d.error.code,
  },
  {
    kind: 'toapis',
    submitPath: '/v1/videos/generations',
    body: (prompt, callbackUrl) => ({ model: 'gemini_omni', prompt, aspect_ratio: '16:9', duration: 6, resolution: '720P', callback_url: callbackUrl }),
    taskIdOf: (a) => {
      expect(a).toMatchObject({ object: 'generation.task', model: 'gemini_omni', status: 'queued', progress: 0 });
      return a.id;
    },
    statusPath: (id) => `/v1/videos/generations/${id}`,
    statuses: { initial: 'queued', processing: 'in_progress', succeeded: 'completed', failed: 'failed' },
    checkSucceeded: (d) => {
      expect(d).toMatchObject({ object: 'generation.task', progress: 100, result: { type: 'video', data: [{ format: 'mp4' }] } });
      expect(d.expires_at).toBeGreaterThan(d.completed_at);
    },
    checkFailed: (d) => expect(d.error).toMatchObject({ code: 'generation_failed' }),
    errorCode: (d) => d.error.code,
  },
  {
    kind: 'video-generations',
    submitPath: '/v1/video/generations',
    body: (prompt) => ({ model: 'veo3.1-video-1080p', prompt, size: '1080p', duration: 8 }),
    taskIdOf: (a) => {
      expect(a).toMatchObject({ object: 'video.generation.job', status: 'queued' });
      expect(a.task_id).toBe(a.id);
      return a.task_id;
    },
    statusPath: (id) => `/v1/videos/${id}`,
    statuses: { initial: 'queued', processing: 'in_progress', succeeded: 'completed', failed: 'failed' },
    checkSucceeded: (d) => expect(d.video_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/files\/.+\.mp4$/),
    checkFailed: (d) => expect(d.video_url).toBeUndefined(),
    errorCode: (d) => d.error.code,
  },
  {
    kind: 'openai-videos',
    submitPath: '/v1/videos',
    body: (prompt) => ({ model: 'veo-3.1-fast-generate-preview', prompt, metadata: { durationSeconds: 8 } }),
    taskIdOf: (a) => {
      expect(a).toMatchObject({ object: 'video', status: '', progress: 0 });
      expect(Buffer.from(a.id, 'base64url').toString()).toMatch(/^models\/veo-3\.1-fast-generate-preview\/operations\//);
      return a.task_id;
    },
    statusPath: (id) => `/v1/videos/${id}`,
    statuses: { initial: '', processing: 'in_progress', succeeded: 'completed', failed: 'failure' },
    checkSucceeded: (d) => expect(d).toMatchObject({ object: 'video', progress: 100, completed_at: expect.any(Number) }),
    checkFailed: (d) => expect(d.fail_reason).toEqual(expect.any(String)),
    errorCode: (d) => d.error.code,
  },
];

async function submitTask(emu: Emulator, c: KindCase, prompt: string, callbackUrl?: string): Promise<string> {
  const res = await call(emu, 'POST', c.submitPath, c.body(prompt, callbackUrl));
  expect(res.status).toBe(200);
  return c.taskIdOf((await res.json()) as Doc);
}

/** Polls until the task is terminal; returns every status seen, in order, and the last document. */
async function pollToEnd(emu: Emulator, c: KindCase, id: string) {
  const seen: string[] = [];
  for (;;) {
    const res = await call(emu, 'GET', c.statusPath(id));
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Doc;
    if (seen.at(-1) !== doc.status) seen.push(doc.status);
    if (doc.status === c.statuses.succeeded || doc.status === c.statuses.failed) return { seen, doc };
    await sleep(5);
  }
}

describe.each(kindCases)('the $kind emulator', (c) => {
  it('moves a task from its initial status through processing to completed', async () => {
    // Long enough that a slow first poll still sees each phase (150 ms apiece).
    const emu = await emulate(c.kind, { durationMs: 450 });
    const id = await submitTask(emu, c, 'a calm lake');
    const { seen, doc } = await pollToEnd(emu, c, id);
    expect(seen).toEqual([c.statuses.initial, c.statuses.processing, c.statuses.succeeded]);
    expect(doc.id).toBe(id);
    c.checkSucceeded(doc);
    expect(emu.tasks.get(id)?.status).toBe(c.statuses.succeeded);
  });

  it('fails a task whose prompt says FAIL', async () => {
    const emu = await emulate(c.kind);
    const id = await submitTask(emu, c, 'please FAIL');
    const { seen, doc } = await pollToEnd(emu, c, id);
    expect(seen.at(-1)).toBe(c.statuses.failed);
    c.checkFailed(doc);
  });

  it('refuses a wrong key with 401 in its error shape', async () => {
    const emu = await emulate(c.kind);
    const res = await fetch(`${emu.baseUrl}${c.submitPath}`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-wrong', 'content-type': 'application/json' },
      body: JSON.stringify(c.body('x')),
    });
    expect(res.status).toBe(401);
    expect(c.errorCode((await res.json()) as Doc)).toBe(c.kind === 'openai-videos' ? 401 : 'invalid_api_key');
    expect(emu.submits()).toBe(0);
  });

  it('answers 400 to a body without model or not JSON, and 404 to unknown paths and tasks', async () => {
    const emu = await emulate(c.kind);
    const { model: _, ...noModel } = c.body('x');
    expect((await call(emu, 'POST', c.submitPath, noModel)).status).toBe(400);
    expect((await call(emu, 'POST', c.submitPath, '{not json')).status).toBe(400);
    expect((await call(emu, 'GET', '/v1/nothing-here')).status).toBe(404);
    expect((await call(emu, 'GET', c.statusPath('no-such-task'))).status).toBe(404);
    expect(emu.submits()).toBe(0);
  });

  it('answers 429 with Retry-After three times, creating no task, then accepts', async () => {
    const emu = await emulate(c.kind);
    emu.behaviour.failNext = { status: 429, count: 3, retryAfterS: 2, on: 'submit' };
    for (let i = 0; i < 3; i++) {
      const res = await call(emu, 'POST', c.submitPath, c.body('x'));
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('2');
      await res.arrayBuffer();
    }
    expect(emu.submits()).toBe(0);
    await submitTask(emu, c, 'x');
    expect(emu.submits()).toBe(1);
    expect(emu.tasks.size).toBe(1);
    expect(emu.requests.map((r) => r.status)).toEqual([429, 429, 429, 200]);
  });

  it('keeps a stalled submit unanswered although the task exists', async () => {
    const emu = await emulate(c.kind);
    emu.behaviour.stallSubmit = true;
    const attempt = call(emu, 'POST', c.submitPath, c.body('x'), { signal: AbortSignal.timeout(200) });
    await expect(attempt).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(emu.submits()).toBe(1);
    expect(emu.tasks.size).toBe(1);
  });
});

describe('emulator behaviours shared by every kind', () => {
  it('refuses connections outright while refuseConnections is on, and serves again after', async () => {
    const emu = await emulate('aivideoapi');
    emu.behaviour.refuseConnections = true;
    const refused = await call(emu, 'GET', '/v1/tasks/x').catch((err: Error & { cause?: { code?: string } }) => err);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error & { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
    emu.behaviour.refuseConnections = false;
    expect((await call(emu, 'GET', '/v1/tasks/x')).status).toBe(404);
  });

  it('adds latencyMs before answering', async () => {
    const emu = await emulate('toapis');
    emu.behaviour.latencyMs = 80;
    const started = Date.now();
    await call(emu, 'GET', '/v1/videos/generations/x');
    expect(Date.now() - started).toBeGreaterThanOrEqual(75);
  });

  it('lets failNext apply to status reads only', async () => {
    const emu = await emulate('video-generations');
    emu.behaviour.failNext = { status: 503, count: 1, on: 'status' };
    const id = await submitTask(emu, kindCases[2]!, 'x');
    expect((await call(emu, 'GET', `/v1/videos/${id}`)).status).toBe(503);
    expect((await call(emu, 'GET', `/v1/videos/${id}`)).status).toBe(200);
  });

  it('makes a video-generations task report unknown on demand', async () => {
    const emu = await emulate('video-generations');
    const id = await submitTask(emu, kindCases[2]!, 'x');
    emu.setUnknown!(id, true);
    expect(((await (await call(emu, 'GET', `/v1/videos/${id}`)).json()) as Doc).status).toBe('unknown');
    emu.setUnknown!(id, false);
    expect(((await (await call(emu, 'GET', `/v1/videos/${id}`)).json()) as Doc).status).not.toBe('unknown');
  });

  it('close is idempotent', async () => {
    const emu = await startEmulator('toapis');
    await Promise.all([emu.close(), emu.close()]);
    await emu.close();
  });
});

describe('emulator callbacks', () => {
  const aivideoapiCase = kindCases[0]!;
  const toapisCase = kindCases[1]!;

  it.each([
    ['normal', 1],
    ['duplicate', 2],
    ['out-of-order', 2],
  ] as const)('aivideoapi sends %s callbacks (%i) with its headers', async (mode, count) => {
    const receiver = await startReceiver();
    const emu = await emulate('aivideoapi');
    emu.behaviour.callbacks = mode;
    const id = await submitTask(emu, aivideoapiCase, 'x', receiver.url);
    await waitFor(() => receiver.received.length >= count);
    await sleep(30);
    expect(receiver.received).toHaveLength(count);
    const [first, second] = receiver.received.map((r) => ({ ...r, doc: JSON.parse(r.body) as Doc }));
    expect(first!.headers).toMatchObject({ 'content-type': 'application/json', 'x-event': 'task.completed', 'x-task-id': id });
    expect(Number(first!.headers['x-timestamp'])).toBeCloseTo(Date.now() / 1000, -1);
    expect(first!.doc).toMatchObject({ id, status: 'completed', output: { urls: [expect.any(String)] } });
    if (mode === 'duplicate') expect(second!.body).toBe(first!.body);
    if (mode === 'out-of-order') expect(second!.doc.status).toBe('processing');
    expect(emu.callbacksSent.map((s) => s.status)).toEqual(Array(count).fill(200));
  });

  it('sends no callback when callbacks are none, nor without a callback_url', async () => {
    const receiver = await startReceiver();
    const emu = await emulate('aivideoapi');
    emu.behaviour.callbacks = 'none';
    await submitTask(emu, aivideoapiCase, 'x', receiver.url);
    await submitTask(emu, aivideoapiCase, 'y');
    await sleep(150);
    expect(receiver.received).toHaveLength(0);
    expect(emu.callbacksSent).toHaveLength(0);
  });

  it('retries a refused callback on the retry schedule, then stops', async () => {
    const receiver = await startReceiver([500, 503, 200]);
    const emu = await emulate('aivideoapi', { callbackRetryDelaysMs: [20, 40] });
    await submitTask(emu, aivideoapiCase, 'x', receiver.url);
    await waitFor(() => emu.callbacksSent.length === 3);
    expect(emu.callbacksSent.map((s) => s.status)).toEqual([500, 503, 200]);
    expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1);
  });

  it('records an unreachable callback target as null and gives up after the last retry', async () => {
    const emu = await emulate('aivideoapi', { callbackRetryDelaysMs: [10] });
    await submitTask(emu, aivideoapiCase, 'x', 'http://127.0.0.1:1/hook');
    await waitFor(() => emu.callbacksSent.length === 2);
    await sleep(50);
    expect(emu.callbacksSent.map((s) => s.status)).toEqual([null, null]);
  });

  it('finishNow ends a task at once with the outcome asked for and fires its callback', async () => {
    const receiver = await startReceiver();
    const emu = await emulate('aivideoapi', { durationMs: 60_000 });
    const id = await submitTask(emu, aivideoapiCase, 'x', receiver.url);
    emu.finishNow(id, 'fail');
    await waitFor(() => receiver.received.length === 1);
    expect(receiver.received[0]!.headers['x-event']).toBe('task.failed');
    expect(emu.tasks.get(id)!.status).toBe('failed');
  });

  it.each([
    ['normal', 1],
    ['duplicate', 2],
    ['out-of-order', 2],
  ] as const)('toapis sends %s signed webhooks (%i) that verify', async (mode, count) => {
    const secret = 'toapis-webhook-secret';
    const receiver = await startReceiver();
    const emu = await emulate('toapis', { webhookSecret: secret });
    emu.behaviour.callbacks = mode;
    const id = await submitTask(emu, toapisCase, 'x', receiver.url);
    await waitFor(() => receiver.received.length >= count);
    await sleep(30);
    expect(receiver.received).toHaveLength(count);
    for (const { headers, body } of receiver.received) {
      const webhookId = headers['x-toapis-webhook-id'] as string;
      const timestamp = headers['x-toapis-webhook-timestamp'] as string;
      const expected = createHmac('sha256', secret).update(`${webhookId}.${timestamp}.${body}`).digest('hex');
      expect(headers['x-toapis-webhook-signature']).toBe(`v1=${expected}`);
      expect(JSON.parse(body)).toMatchObject({ id: webhookId, data: { task_id: id } });
    }
    const [first, second] = receiver.received.map((r) => JSON.parse(r.body) as Doc);
    expect(first).toMatchObject({ id: expect.stringMatching(/^wh_/), type: 'generation.completed', data: { status: 'completed', progress: 100 } });
    if (mode === 'duplicate') expect(second!.id).toBe(first!.id);
    if (mode === 'out-of-order') {
      expect(second!.id).not.toBe(first!.id);
      expect(second!.data.status).toBe('in_progress');
    }
  });

  it('toapis omits the signature without a secret and sends generation.failed for a failure', async () => {
    const receiver = await startReceiver();
    const emu = await emulate('toapis');
    await submitTask(emu, toapisCase, 'FAIL', receiver.url);
    await waitFor(() => receiver.received.length === 1);
    expect(receiver.received[0]!.headers['x-toapis-webhook-signature']).toBeUndefined();
    expect(JSON.parse(receiver.received[0]!.body)).toMatchObject({ type: 'generation.failed', data: { status: 'failed', result: null } });
  });

  it('openai-videos sends a Standard Webhook that verifies, only when secret and URL are set', async () => {
    const key = Buffer.from('standard-webhooks-test-key-32byte');
    const secret = `whsec_${key.toString('base64')}`;
    const receiver = await startReceiver();
    const silent = await emulate('openai-videos', { webhookUrl: receiver.url });
    await submitTask(silent, kindCases[3]!, 'x');
    const emu = await emulate('openai-videos', { webhookSecret: secret, webhookUrl: receiver.url });
    const id = await submitTask(emu, kindCases[3]!, 'x');
    await waitFor(() => receiver.received.length === 1);
    await sleep(50);
    expect(receiver.received).toHaveLength(1);
    const { headers, body } = receiver.received[0]!;
    const expected = createHmac('sha256', key).update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`).digest('base64');
    expect(headers['webhook-signature']).toBe(`v1,${expected}`);
    expect(JSON.parse(body)).toEqual({
      id: headers['webhook-id'],
      object: 'event',
      created_at: expect.any(Number),
      type: 'video.completed',
      data: { id },
    });
  });
});

describe('openai-videos content', () => {
  it('serves 64 KiB of video after completion, with single ranges', async () => {
    const emu = await emulate('openai-videos', { durationMs: 60_000 });
    const id = await submitTask(emu, kindCases[3]!, 'x');
    const content = `/v1/videos/${id}/content`;
    expect((await call(emu, 'GET', content)).status).toBe(404);
    emu.finishNow(id);

    const full = await call(emu, 'GET', content);
    expect(full.status).toBe(200);
    expect(full.headers.get('content-type')).toBe('video/mp4');
    const bytes = Buffer.from(await full.arrayBuffer());
    expect(bytes).toHaveLength(65536);
    expect(bytes.subarray(4, 8).toString()).toBe('ftyp');
    expect(Buffer.from(await (await call(emu, 'GET', content)).arrayBuffer())).toEqual(bytes);

    const part = await call(emu, 'GET', content, undefined, { headers: { authorization: `Bearer ${emu.apiKey}`, range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 100-199/65536');
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(100, 200));

    const tail = await call(emu, 'GET', content, undefined, { headers: { authorization: `Bearer ${emu.apiKey}`, range: 'bytes=65000-' } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(bytes.subarray(65000));

    const beyond = await call(emu, 'GET', content, undefined, { headers: { authorization: `Bearer ${emu.apiKey}`, range: 'bytes=70000-' } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe('bytes */65536');
    await beyond.arrayBuffer();

    const anonymous = await fetch(`${emu.baseUrl}${content}`);
    expect(anonymous.status).toBe(401);
  });
});
