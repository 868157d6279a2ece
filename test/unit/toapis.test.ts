import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseFileConfig } from '../../src/config.js';
import type { JobRequest } from '../../src/jobs/request.js';
import {
  buildToapisSubmit,
  createToapisAdapter,
  parseToapisCallback,
  parseToapisStatus,
  parseToapisSubmit,
  validateToapisRequest,
} from '../../src/providers/toapis.js';
import type { FetchFn } from '../../src/providers/http.js';
import { type CallbackRequest, MalformedPayloadError, ProviderCallError } from '../../src/providers/types.js';

const SECRET = 'toapis-webhook-secret';

function configWith(extra: string) {
  const json = `{"providers":{"t":{"kind":"toapis","base_url":"http://toapis.test","api_key":"k"${extra}}}}`;
  return { ...parseFileConfig(json, {}).providers.t!, name: 't' };
}

const adapter = createToapisAdapter(configWith(`,"webhook_secret":"${SECRET}"`), fetch);
const unsignedAdapter = createToapisAdapter(configWith(''), fetch);

const base: JobRequest = { provider: 't', prompt: 'A drone shot over mountains at sunset' };

describe('toapis request rules (seeds 000/003, model gemini_omni)', () => {
  const passing: [string, Partial<JobRequest>][] = [
    ['the minimal request (model defaults to gemini_omni)', {}],
    ['model gemini_omni', { model: 'gemini_omni' }],
    ['aspect_ratio 16:9', { aspect_ratio: '16:9' }],
    ['aspect_ratio 9:16', { aspect_ratio: '9:16' }],
    ['duration 6', { duration: 6 }],
    ['duration 10', { duration: 10 }],
    ['resolution 720P', { resolution: '720P' }],
    ['native extras in provider_options', { provider_options: { user: 'u-1' } }],
  ];
  it.each(passing)('accepts %s', (_, change) => {
    expect(validateToapisRequest({ ...base, ...change })).toEqual([]);
  });

  const failing: [string, JobRequest, string, string][] = [
    ['another model', { ...base, model: 'veo-3' }, 'model', 'toapis.model'],
    ['a missing prompt', { provider: 't' }, 'prompt', 'toapis.gemini_omni.prompt'],
    ['aspect_ratio 1:1', { ...base, aspect_ratio: '1:1' }, 'aspect_ratio', 'toapis.gemini_omni.aspect_ratio'],
    ['duration 8', { ...base, duration: 8 }, 'duration', 'toapis.gemini_omni.duration'],
    ['resolution 1080P', { ...base, resolution: '1080P' }, 'resolution', 'toapis.gemini_omni.resolution'],
    ['resolution 720p (lower case)', { ...base, resolution: '720p' }, 'resolution', 'toapis.gemini_omni.resolution'],
    ['images', { ...base, images: ['https://x.test/a.png'] }, 'images', 'toapis.unsupported_field'],
    ['reference_images', { ...base, reference_images: ['https://x.test/a.png'] }, 'reference_images', 'toapis.unsupported_field'],
    ['negative_prompt', { ...base, negative_prompt: 'blur' }, 'negative_prompt', 'toapis.unsupported_field'],
    ['seed', { ...base, seed: 12345 }, 'seed', 'toapis.unsupported_field'],
    ['audio', { ...base, audio: true }, 'audio', 'toapis.unsupported_field'],
    ['provider_options overriding duration', { ...base, provider_options: { duration: 20 } }, 'provider_options.duration', 'toapis.provider_options'],
    ['provider_options overriding callback_url', { ...base, provider_options: { callback_url: 'https://elsewhere.test' } }, 'provider_options.callback_url', 'toapis.provider_options'],
  ];
  it.each(failing)('refuses %s, naming the field and the rule', (_, req, field, rule) => {
    const violations = validateToapisRequest(req);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ field, rule });
    expect(violations[0]!.message).toContain(field);
  });

  it('reports every broken rule at once', () => {
    const violations = validateToapisRequest({ provider: 't', duration: 8, resolution: '4k', seed: 1 });
    expect(violations.map((v) => v.rule).sort()).toEqual([
      'toapis.gemini_omni.duration',
      'toapis.gemini_omni.prompt',
      'toapis.gemini_omni.resolution',
      'toapis.unsupported_field',
    ]);
  });
});

describe('toapis submit body', () => {
  it('fills the documented defaults and puts callback_url in the body', () => {
    expect(buildToapisSubmit(base, 'https://relay.test/callbacks/t/job_1/tok')).toEqual({
      path: '/v1/videos/generations',
      body: {
        model: 'gemini_omni',
        prompt: base.prompt,
        aspect_ratio: '16:9',
        duration: 6,
        resolution: '720P',
        callback_url: 'https://relay.test/callbacks/t/job_1/tok',
      },
    });
  });

  it('carries the request fields, merges provider_options at the top level, and omits callback_url when there is none', () => {
    const req: JobRequest = { ...base, model: 'gemini_omni', aspect_ratio: '9:16', duration: 10, resolution: '720P', provider_options: { user: 'u-1', watermark: false } };
    const { body } = buildToapisSubmit(req, null);
    expect(body).toEqual({ model: 'gemini_omni', prompt: base.prompt, aspect_ratio: '9:16', duration: 10, resolution: '720P', user: 'u-1', watermark: false });
    expect(body).not.toHaveProperty('callback_url');
  });
});

describe('toapis submit answer', () => {
  it('reads the current shape {id, object, model, status: "queued", progress, created_at}', () => {
    const answer = { id: 'video_abc', object: 'generation.task', model: 'gemini_omni', status: 'queued', progress: 0, created_at: 1774706165 };
    expect(parseToapisSubmit(answer)).toEqual({ taskId: 'video_abc', observation: { status: 'submitted', progress: 0, raw: answer } });
  });

  it('reads the older shape {code, data: [{task_id, status: "submitted"}]}', () => {
    const answer = { code: 200, data: [{ task_id: 'task_old', status: 'submitted' }] };
    expect(parseToapisSubmit(answer)).toMatchObject({ taskId: 'task_old', observation: { status: 'submitted' } });
  });

  it('an older answer with a code other than 200 is the provider refusing', () => {
    expect(() => parseToapisSubmit({ code: 400, message: 'bad prompt', data: [] })).toThrow(ProviderCallError);
  });

  it('an answer naming no task is malformed', () => {
    expect(() => parseToapisSubmit({ object: 'generation.task', status: 'queued' })).toThrow(MalformedPayloadError);
    expect(() => parseToapisSubmit({ code: 200, data: [] })).toThrow(MalformedPayloadError);
    expect(() => parseToapisSubmit('video_abc')).toThrow(MalformedPayloadError);
  });
});

describe('toapis status documents', () => {
  const doc = { id: 'video_abc', object: 'generation.task', model: 'gemini_omni', created_at: 1774706165 };

  it.each([
    ['submitted', 'submitted'],
    ['queued', 'submitted'],
    ['in_progress', 'processing'],
    ['completed', 'succeeded'],
    ['failed', 'failed'],
  ])('%s → %s', (status, expected) => {
    expect(parseToapisStatus({ ...doc, status })?.status).toBe(expected);
  });

  it('a status the relay does not know changes nothing; a missing status is malformed', () => {
    expect(parseToapisStatus({ ...doc, status: 'cancelling' })).toBeNull();
    expect(() => parseToapisStatus(doc)).toThrow(MalformedPayloadError);
    expect(() => parseToapisStatus([doc])).toThrow(MalformedPayloadError);
  });

  it('progress is normalised', () => {
    expect(parseToapisStatus({ ...doc, status: 'in_progress', progress: '42.4' })?.progress).toBe(42);
    expect(parseToapisStatus({ ...doc, status: 'in_progress', progress: 140 })?.progress).toBe(100);
    expect(parseToapisStatus({ ...doc, status: 'queued' })?.progress).toBeNull();
  });

  it('completed reads result {type: "video", data: [{url, format}]}', () => {
    const completed = {
      ...doc,
      status: 'completed',
      progress: 100,
      completed_at: 1774706300,
      expires_at: 1774792700,
      result: { type: 'video', data: [{ url: 'https://cdn.toapis.test/v/abc.mp4', format: 'mp4' }] },
    };
    const obs = parseToapisStatus(completed);
    expect(obs).toMatchObject({ status: 'succeeded', progress: 100, videoUrls: ['https://cdn.toapis.test/v/abc.mp4'] });
    expect(obs?.raw).toEqual(completed);
  });

  it('completed accepts a bare URL as result, and bare strings in result.data', () => {
    expect(parseToapisStatus({ ...doc, status: 'completed', result: 'https://cdn.toapis.test/v/a.mp4' })?.videoUrls).toEqual([
      'https://cdn.toapis.test/v/a.mp4',
    ]);
    expect(parseToapisStatus({ ...doc, status: 'completed', result: { type: 'video', data: ['https://cdn.toapis.test/v/b.mp4'] } })?.videoUrls).toEqual([
      'https://cdn.toapis.test/v/b.mp4',
    ]);
    expect(parseToapisStatus({ ...doc, status: 'completed' })?.videoUrls).toEqual([]);
  });

  it('failed carries the provider error, as an object or a string', () => {
    expect(parseToapisStatus({ ...doc, status: 'failed', error: { code: 'content_policy', message: 'prompt refused' } })).toMatchObject({
      status: 'failed',
      error: { code: 'content_policy', message: 'prompt refused', source: 'provider' },
    });
    expect(parseToapisStatus({ ...doc, status: 'failed', error: 'upstream timed out' })?.error).toEqual({
      code: 'generation_failed',
      message: 'upstream timed out',
      source: 'provider',
    });
    expect(parseToapisStatus({ ...doc, status: 'failed' })?.error?.code).toBe('generation_failed');
  });

  it('the document inside the older {code, data} envelope parses the same', () => {
    expect(parseToapisStatus({ code: 200, data: [{ task_id: 'task_old', status: 'in_progress' }] })?.status).toBe('processing');
  });
});

/** A fetch that answers every call with one canned response and records what it was asked. */
function cannedFetch(status: number, body: unknown, headers: Record<string, string> = {}) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchFn: FetchFn = async (input, init) => {
    calls.push({ url: String(input), init: init ?? {} });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
  };
  return { calls, fetchFn };
}

describe('toapis calls (no network)', () => {
  it('submit POSTs the body to /v1/videos/generations and reads the answer', async () => {
    const { calls, fetchFn } = cannedFetch(200, { id: 'video_abc', object: 'generation.task', status: 'queued', progress: 0 });
    const result = await createToapisAdapter(configWith(''), fetchFn).submit(base, 'https://relay.test/cb');
    expect(result.taskId).toBe('video_abc');
    expect(calls[0]!.url).toBe('http://toapis.test/v1/videos/generations');
    expect(calls[0]!.init.method).toBe('POST');
    expect(JSON.parse(String(calls[0]!.init.body))).toMatchObject({ model: 'gemini_omni', callback_url: 'https://relay.test/cb' });
  });

  it('fetchStatus GETs /v1/videos/generations/{id}', async () => {
    const { calls, fetchFn } = cannedFetch(200, { id: 'video/abc', status: 'in_progress', progress: 30 });
    const obs = await createToapisAdapter(configWith(''), fetchFn).fetchStatus('video/abc');
    expect(obs).toMatchObject({ status: 'processing', progress: 30 });
    expect(calls[0]!.url).toBe('http://toapis.test/v1/videos/generations/video%2Fabc');
    expect(calls[0]!.init.method).toBe('GET');
  });

  // Seeds 000/003 list these error types; the bodies follow their `{error: {message, type}}` naming.
  it.each([
    [400, 'invalid_request_error', false],
    [401, 'authentication_error', false],
    [429, 'rate_limit_exceeded', true],
    [500, 'internal_error', true],
  ])('HTTP %i %s is reported with the provider code, retryable = %s', async (status, type, retryable) => {
    const { fetchFn } = cannedFetch(status, { error: { message: `${type} happened`, type } });
    const err = await createToapisAdapter(configWith(''), fetchFn).submit(base, null).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderCallError);
    expect((err as ProviderCallError).failure).toMatchObject({ status, code: type, message: `${type} happened`, retryable });
  });
});

const completedEvent = {
  id: 'evt_1',
  type: 'generation.completed',
  created_at: 1774706300,
  data: {
    task_id: 'video_abc',
    status: 'completed',
    progress: 100,
    result: { type: 'video', data: [{ url: 'https://cdn.toapis.test/v/abc.mp4', format: 'mp4' }] },
    error: null,
  },
};

function callback(body: Record<string, unknown>, headers: Record<string, string> = {}): CallbackRequest {
  return { headers, raw: new TextEncoder().encode(JSON.stringify(body)), body };
}

describe('toapis callbacks', () => {
  it('a completed event gives the task id and a succeeded observation', () => {
    const parsed = parseToapisCallback(callback(completedEvent));
    expect(parsed.taskId).toBe('video_abc');
    expect(parsed.observation).toMatchObject({ status: 'succeeded', progress: 100, videoUrls: ['https://cdn.toapis.test/v/abc.mp4'] });
  });

  it('a failed event carries the error', () => {
    const body = { id: 'evt_2', type: 'generation.failed', data: { task_id: 'video_abc', status: 'failed', error: { code: 'upstream_error', message: 'boom' } } };
    expect(parseToapisCallback(callback(body)).observation).toMatchObject({ status: 'failed', error: { code: 'upstream_error', message: 'boom' } });
  });

  it('without data.status the event type decides; data.id stands in for data.task_id', () => {
    const completed = parseToapisCallback(callback({ id: 'evt_3', type: 'generation.completed', data: { id: 'video_x', result: 'https://cdn.toapis.test/x.mp4' } }));
    expect(completed).toMatchObject({ taskId: 'video_x', observation: { status: 'succeeded', videoUrls: ['https://cdn.toapis.test/x.mp4'] } });
    expect(parseToapisCallback(callback({ type: 'generation.failed', data: { task_id: 'video_y' } })).observation?.status).toBe('failed');
  });

  it('data.status wins over the event type', () => {
    expect(parseToapisCallback(callback({ type: 'generation.completed', data: { task_id: 't', status: 'in_progress' } })).observation?.status).toBe('processing');
  });

  it('an unknown event type without a status is ignored; no data or no status at all is malformed', () => {
    expect(parseToapisCallback(callback({ type: 'generation.progress', data: { task_id: 't' } })).observation).toBeNull();
    expect(() => parseToapisCallback(callback({ type: 'generation.completed' }))).toThrow(MalformedPayloadError);
    expect(() => parseToapisCallback(callback({ data: { task_id: 't' } }))).toThrow(MalformedPayloadError);
  });

  it('the delivery id is the X-ToAPIs-Webhook-Id header, else the body id', () => {
    expect(adapter.callbackDeliveryId!(callback(completedEvent, { 'x-toapis-webhook-id': 'wh_1' }))).toBe('wh_1');
    expect(adapter.callbackDeliveryId!(callback(completedEvent))).toBe('evt_1');
    expect(adapter.callbackDeliveryId!(callback({ data: {} }))).toBeNull();
  });

  it('callbacks count as signed only when a webhook secret is configured, and the secret is not a kept header', () => {
    expect(adapter.signedCallbacks).toBe(true);
    expect(unsignedAdapter.signedCallbacks).toBe(false);
    expect(adapter.keyedContent).toBe(false);
    expect(adapter.callbackHeaders).toEqual([
      'content-type',
      'user-agent',
      'x-toapis-webhook-id',
      'x-toapis-webhook-timestamp',
      'x-toapis-webhook-signature',
    ]);
  });
});

describe('toapis callback signatures', () => {
  const now = new Date('2026-11-22T10:00:00Z');
  const nowS = Math.floor(now.getTime() / 1000);
  const raw = new TextEncoder().encode(JSON.stringify(completedEvent));

  function sign(secret: string, id: string, timestamp: string, bytes: Uint8Array): string {
    return createHmac('sha256', secret).update(`${id}.${timestamp}.`).update(bytes).digest('hex');
  }

  function signed(opts: { secret?: string; timestamp?: number; signature?: string; bytes?: Uint8Array } = {}): CallbackRequest {
    const timestamp = String(opts.timestamp ?? nowS);
    const signature = opts.signature ?? `v1=${sign(opts.secret ?? SECRET, 'wh_1', timestamp, raw)}`;
    return {
      headers: { 'x-toapis-webhook-id': 'wh_1', 'x-toapis-webhook-timestamp': timestamp, 'x-toapis-webhook-signature': signature },
      raw: opts.bytes ?? raw,
      body: completedEvent,
    };
  }

  it('a valid signature over the raw bytes passes', () => {
    expect(adapter.verifyCallback!(signed(), now)).toEqual({ ok: true });
  });

  it('is checked over the exact bytes, not a re-serialised body', () => {
    const spaced = new TextEncoder().encode(JSON.stringify(completedEvent, null, 2));
    const req = signed({ bytes: spaced, signature: `v1=${sign(SECRET, 'wh_1', String(nowS), spaced)}` });
    expect(adapter.verifyCallback!(req, now)).toEqual({ ok: true });
  });

  it('a signature made with another secret fails', () => {
    expect(adapter.verifyCallback!(signed({ secret: 'other-secret' }), now)).toMatchObject({ ok: false, reason: 'signature does not match' });
  });

  it('a timestamp older than 5 minutes fails; exactly 5 minutes passes', () => {
    expect(adapter.verifyCallback!(signed({ timestamp: nowS - 301 }), now)).toMatchObject({ ok: false, reason: expect.stringContaining('old') });
    expect(adapter.verifyCallback!(signed({ timestamp: nowS - 300 }), now)).toEqual({ ok: true });
  });

  it('a timestamp more than 5 minutes in the future fails', () => {
    expect(adapter.verifyCallback!(signed({ timestamp: nowS + 301 }), now)).toMatchObject({ ok: false, reason: expect.stringContaining('future') });
  });

  it('during rotation one matching v1 value among several is enough, with or without spaces', () => {
    const good = sign(SECRET, 'wh_1', String(nowS), raw);
    const old = sign('retired-secret', 'wh_1', String(nowS), raw);
    expect(adapter.verifyCallback!(signed({ signature: `v1=${old},v1=${good}` }), now)).toEqual({ ok: true });
    expect(adapter.verifyCallback!(signed({ signature: `v1=${old}, v1=${good}` }), now)).toEqual({ ok: true });
  });

  it('a tampered body fails', () => {
    const tampered = new TextEncoder().encode(JSON.stringify({ ...completedEvent, data: { ...completedEvent.data, task_id: 'video_other' } }));
    expect(adapter.verifyCallback!(signed({ bytes: tampered }), now)).toMatchObject({ ok: false, reason: 'signature does not match' });
  });

  it.each(['x-toapis-webhook-id', 'x-toapis-webhook-timestamp', 'x-toapis-webhook-signature'])('a missing %s header fails', (name) => {
    const req = signed();
    delete req.headers[name];
    expect(adapter.verifyCallback!(req, now)).toMatchObject({ ok: false, reason: expect.stringContaining('missing') });
  });

  it('a non-numeric timestamp fails', () => {
    const req = signed();
    req.headers['x-toapis-webhook-timestamp'] = '2026-11-22T10:00:00Z';
    expect(adapter.verifyCallback!(req, now)).toMatchObject({ ok: false, reason: expect.stringContaining('unix seconds') });
  });

  it.each([
    ['no v1= prefix', (hex: string) => hex],
    ['another scheme', (hex: string) => `v2=${hex}`],
    ['too short', (hex: string) => `v1=${hex.slice(0, 62)}`],
    ['too long', (hex: string) => `v1=${hex}00`],
    ['not hex', (hex: string) => `v1=${hex.slice(0, 62)}zz`],
    ['empty', () => 'v1='],
  ])('a malformed signature (%s) fails', (_, mangle) => {
    const req = signed({ signature: mangle(sign(SECRET, 'wh_1', String(nowS), raw)) });
    expect(adapter.verifyCallback!(req, now)).toMatchObject({ ok: false, reason: expect.stringContaining('no well-formed') });
  });

  it('without a configured secret nothing verifies, and no reason reveals the secret', () => {
    expect(unsignedAdapter.verifyCallback!(signed(), now)).toMatchObject({ ok: false });
    for (const req of [signed(), signed({ secret: 'x' }), signed({ timestamp: 0 })]) {
      const check = adapter.verifyCallback!(req, now);
      expect(JSON.stringify(check)).not.toContain(SECRET);
    }
  });
});
