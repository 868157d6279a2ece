import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseFileConfig } from '../../src/config.js';
import type { JobRequest } from '../../src/jobs/request.js';
import type { FetchFn } from '../../src/providers/http.js';
import {
  buildOpenaiVideosSubmit,
  createOpenaiVideosAdapter,
  parseOpenaiVideosStatus,
  parseOpenaiVideosSubmit,
  validateOpenaiVideosRequest,
  verifyStandardWebhook,
} from '../../src/providers/openai-videos.js';
import { type CallbackRequest, MalformedPayloadError, ProviderCallError } from '../../src/providers/types.js';

// The answers exactly as seed 004 shows them.
const seedSubmitResponse = `{
"id": "bW9kZWxzL3Zlby0zLjEtZmFzdC1nZW5lcmF0ZS1wcmV2aWV3L29wZXJhdGlvbnMveHh4",
"task_id": "bW9kZWxzL3Zlby0zLjEtZmFzdC1nZW5lcmF0ZS1wcmV2aWV3L29wZXJhdGlvbnMveHh4",
"object": "video",
"model": "veo-3.1-fast-generate-preview",
"status": "",
"progress": 0,
"created_at": 1704672000
}`;
const seedProcessing = `{
"id": "bW9kZWxzL3Zlby0zLjEtZmFzdC1nZW5lcmF0ZS1wcmV2aWV3L29wZXJhdGlvbnMveHh4",
"task_id": "bW9kZWxzL3Zlby0zLjEtZmFzdC1nZW5lcmF0ZS1wcmV2aWV3L29wZXJhdGlvbnMveHh4",
"model": "veo-3.1-fast-generate-preview",
"object": "video",
"status": "in_progress",
"progress": 50,
"created_at": 1704672000
}`;
const seedCompleted = `{
"id": "bW9kZWxzL3Zlby0zLjEtZmFzdC1nZW5lcmF0ZS1wcmV2aWV3L29wZXJhdGlvbnMveHh4",
"task_id": "bW9kZWxzL3Zlby0zLjEtZmFzdC1nZW5lcmF0ZS1wcmV2aWV3L29wZXJhdGlvbnMveHh4",
"model": "veo-3.1-fast-generate-preview",
"object": "video",
"status": "completed",
"progress": 100,
"created_at": 1704672000,
"completed_at": 1704672060
}`;
const seedInterpolationError = `{
"error": {
"code": 400,
"message": "Your use case is currently not supported.",
"status": "INVALID_ARGUMENT"
}
}`;
const SEED_TASK = 'bW9kZWxzL3Zlby0zLjEtZmFzdC1nZW5lcmF0ZS1wcmV2aWV3L29wZXJhdGlvbnMveHh4';

// The request bodies of seed 004's examples.
const seedTextToVideo = `{
"model": "veo-3.1-fast-generate-preview",
"prompt": "一只可爱的橘猫在阳光明媚的花园里追逐蝴蝶,慢动作镜头,电影级画质"
}`;
const seedImageToVideo = `{
"model": "veo-3.1-fast-generate-preview",
"prompt": "猫咪开始奔跑,镜头跟随",
"images": [
"https://example.com/cat-sitting.jpg"
]
}`;
const seedImageToVideoBase64 = `{
"model": "veo-3.1-fast-generate-preview",
"prompt": "猫咪开始奔跑,镜头跟随",
"images": [
"iVBORw0KGgoAAAANSUhEUgAA..."
]
}`;
const seedInterpolation = `{
"model": "veo-3.1-fast-generate-preview",
"prompt": "平滑过渡,自然变化",
"images": [
"https://example.com/frame-start.jpg",
"https://example.com/frame-end.jpg"
],
"metadata": {
"durationSeconds": 8
}
}`;
const seedReferenceImages = `{
"model": "veo-3.1-generate-preview",
"prompt": "一只可爱的猫咪在花园里玩耍",
"metadata": {
"aspectRatio": "16:9",
"durationSeconds": 8,
"referenceImages": [
{
"image": {
"bytesBase64Encoded": "https://example.com/style-ref1.jpg"
},
"referenceType": "asset"
},
{
"image": {
"bytesBase64Encoded": "https://example.com/style-ref2.jpg"
},
"referenceType": "asset"
}
]
}
}`;
const seedFullMetadata = `{
"model": "veo-3.1-fast-generate-preview",
"prompt": "让画面动起来,镜头缓慢推进",
"images": [
"https://example.com/start-frame.jpg"
],
"metadata": {
"aspectRatio": "16:9",
"durationSeconds": 6,
"negativePrompt": "模糊,低质量,变形",
"personGeneration": "allow_adult"
}
}`;
const seedReferenceImagesField = `{
"referenceImages": [
{
"image": {
"bytesBase64Encoded": "https://example.com/style.jpg"
},
"referenceType": "asset"
},
{
"image": {
"bytesBase64Encoded": "iVBORw0KGgoAAAANSUhEUg...",
"mimeType": "image/png"
},
"referenceType": "asset"
}
]
}`;

// The secret of the Standard Webhooks reference test vector.
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

function configWith(extra: string) {
  const json = `{"providers":{"o":{"kind":"openai-videos","base_url":"http://ov.test","api_key":"k"${extra}}}}`;
  return { ...parseFileConfig(json, {}).providers.o!, name: 'o' };
}

const adapter = createOpenaiVideosAdapter(configWith(''), fetch);
const signedAdapter = createOpenaiVideosAdapter(configWith(`,"webhook_secret":"${SECRET}"`), fetch);

const base: JobRequest = { provider: 'o', model: 'veo-3.1-fast-generate-preview', prompt: 'A cat chases butterflies' };
const img = (n: number) => Array.from({ length: n }, (_, i) => `https://x.test/${i}.png`);
const reference: Partial<JobRequest> = {
  model: 'veo-3.1-generate-preview',
  reference_images: img(2),
  aspect_ratio: '16:9',
  duration: 8,
};

describe('openai-videos request rules (seed 004)', () => {
  const passing: [string, Partial<JobRequest>][] = [
    ['the minimal request', {}],
    ['the standard model', { model: 'veo-3.1-generate-preview' }],
    ['duration 4', { duration: 4 }],
    ['duration 6', { duration: 6 }],
    ['aspect_ratio 9:16', { aspect_ratio: '9:16' }],
    ['one image', { images: img(1) }],
    ['two images with duration 8', { images: img(2), duration: 8 }],
    ['two images with a native durationSeconds 8', { images: img(2), provider_options: { durationSeconds: 8 } }],
    ['one reference image on the standard model', { ...reference, reference_images: img(1) }],
    ['three reference images on the standard model', { ...reference, reference_images: img(3) }],
    ['native referenceImages (seed 004 shape)', { ...reference, reference_images: undefined, provider_options: JSON.parse(seedReferenceImagesField) }],
    ['personGeneration allow_adult', { provider_options: { personGeneration: 'allow_adult' } }],
    ['negative_prompt and resolution', { negative_prompt: 'blur', resolution: '720p' }],
  ];
  it.each(passing)('accepts %s', (_, change) => {
    expect(validateOpenaiVideosRequest({ ...base, ...change })).toEqual([]);
  });

  it('fills in the only allowed value: 8 s for two images, 8 s and 16:9 for reference images', () => {
    expect(buildOpenaiVideosSubmit({ ...base, images: img(2) }).body.metadata).toMatchObject({ durationSeconds: 8 });
    const refs = buildOpenaiVideosSubmit({ ...base, ...reference, aspect_ratio: undefined, duration: undefined }).body.metadata;
    expect(refs).toMatchObject({ durationSeconds: 8, aspectRatio: '16:9' });
    expect(validateOpenaiVideosRequest({ ...base, ...reference, aspect_ratio: undefined, duration: undefined })).toEqual([]);
  });

  const failing: [string, Partial<JobRequest>, string, string][] = [
    ['a missing model', { model: undefined }, 'model', 'openai-videos.model'],
    ['an unknown model', { model: 'veo-3' }, 'model', 'openai-videos.model'],
    ['a missing prompt', { prompt: undefined }, 'prompt', 'openai-videos.prompt'],
    ['seed', { seed: 7 }, 'seed', 'openai-videos.unsupported_field'],
    ['audio', { audio: true }, 'audio', 'openai-videos.unsupported_field'],
    ['duration 5', { duration: 5 }, 'duration', 'openai-videos.duration'],
    ['a native durationSeconds of "8" (a string)', { provider_options: { durationSeconds: '8' } }, 'provider_options.durationSeconds', 'openai-videos.duration'],
    ['aspect_ratio 1:1', { aspect_ratio: '1:1' }, 'aspect_ratio', 'openai-videos.aspect_ratio'],
    ['personGeneration allow_all', { provider_options: { personGeneration: 'allow_all' } }, 'provider_options.personGeneration', 'openai-videos.person_generation'],
    ['three images', { images: img(3) }, 'images', 'openai-videos.images'],
    ['two images with duration 6', { images: img(2), duration: 6 }, 'duration', 'openai-videos.interpolation.duration'],
    ['four reference images', { ...reference, reference_images: img(4) }, 'reference_images', 'openai-videos.reference.images'],
    ['native referenceImages that are not a list', { ...reference, reference_images: undefined, provider_options: { referenceImages: 'x' } }, 'provider_options.referenceImages', 'openai-videos.reference.images'],
    ['reference images on the fast model', { ...reference, model: 'veo-3.1-fast-generate-preview' }, 'model', 'openai-videos.reference.model'],
    ['reference images together with images', { ...reference, images: img(1) }, 'reference_images', 'openai-videos.reference.exclusive'],
    ['reference images in 9:16', { ...reference, aspect_ratio: '9:16' }, 'aspect_ratio', 'openai-videos.reference.aspect_ratio'],
    ['reference images with duration 6', { ...reference, duration: 6 }, 'duration', 'openai-videos.reference.duration'],
    ['a native field replacing a normalised one', { duration: 4, provider_options: { durationSeconds: 6 } }, 'provider_options.durationSeconds', 'openai-videos.provider_options'],
  ];
  it.each(failing)('refuses %s, naming the field and the rule', (_, change, field, rule) => {
    const violations = validateOpenaiVideosRequest({ ...base, ...change });
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ field, rule });
    expect(violations[0]!.message).toContain(field);
  });
});

describe('openai-videos submit body (seed 004 examples)', () => {
  it.each<[string, Omit<JobRequest, 'provider'>, string]>([
    ['text-to-video', { model: 'veo-3.1-fast-generate-preview', prompt: '一只可爱的橘猫在阳光明媚的花园里追逐蝴蝶,慢动作镜头,电影级画质' }, seedTextToVideo],
    ['image-to-video', { model: 'veo-3.1-fast-generate-preview', prompt: '猫咪开始奔跑,镜头跟随', images: ['https://example.com/cat-sitting.jpg'] }, seedImageToVideo],
    ['image-to-video with base64', { model: 'veo-3.1-fast-generate-preview', prompt: '猫咪开始奔跑,镜头跟随', images: ['iVBORw0KGgoAAAANSUhEUgAA...'] }, seedImageToVideoBase64],
    [
      'frame interpolation',
      {
        model: 'veo-3.1-fast-generate-preview',
        prompt: '平滑过渡,自然变化',
        images: ['https://example.com/frame-start.jpg', 'https://example.com/frame-end.jpg'],
        duration: 8,
      },
      seedInterpolation,
    ],
    [
      'reference images',
      {
        model: 'veo-3.1-generate-preview',
        prompt: '一只可爱的猫咪在花园里玩耍',
        aspect_ratio: '16:9',
        duration: 8,
        reference_images: ['https://example.com/style-ref1.jpg', 'https://example.com/style-ref2.jpg'],
      },
      seedReferenceImages,
    ],
    [
      'image-to-video with metadata',
      {
        model: 'veo-3.1-fast-generate-preview',
        prompt: '让画面动起来,镜头缓慢推进',
        images: ['https://example.com/start-frame.jpg'],
        aspect_ratio: '16:9',
        duration: 6,
        negative_prompt: '模糊,低质量,变形',
        provider_options: { personGeneration: 'allow_adult' },
      },
      seedFullMetadata,
    ],
  ])('%s', (_, fields, expected) => {
    const req: JobRequest = { provider: 'o', ...fields };
    expect(validateOpenaiVideosRequest(req)).toEqual([]);
    expect(buildOpenaiVideosSubmit(req)).toEqual({ path: '/v1/videos', body: JSON.parse(expected) });
  });

  it('resolution and other native Gemini fields go into metadata; no callback URL is sent', () => {
    const body = adapter.buildSubmit({ ...base, resolution: '1080p', provider_options: { enhancePrompt: true } }, 'https://relay.test/cb').body;
    expect(body).toEqual({ model: base.model, prompt: base.prompt, metadata: { resolution: '1080p', enhancePrompt: true } });
  });
});

describe('openai-videos submit answer', () => {
  it('the seed answer: task_id, status "" → submitted', () => {
    expect(parseOpenaiVideosSubmit(JSON.parse(seedSubmitResponse))).toEqual({
      taskId: SEED_TASK,
      observation: { status: 'submitted', progress: 0, raw: JSON.parse(seedSubmitResponse) },
    });
  });

  it('falls back to id, and to submitted when no status is given', () => {
    expect(parseOpenaiVideosSubmit({ id: 'video_1' })).toMatchObject({ taskId: 'video_1', observation: { status: 'submitted' } });
  });

  it('an answer that names no task is malformed', () => {
    expect(() => parseOpenaiVideosSubmit({ status: '' })).toThrow(MalformedPayloadError);
    expect(() => parseOpenaiVideosSubmit(null)).toThrow(MalformedPayloadError);
  });
});

describe('openai-videos status (seed 004)', () => {
  it('the seed processing document → processing at 50', () => {
    expect(parseOpenaiVideosStatus(JSON.parse(seedProcessing))).toEqual({
      status: 'processing',
      progress: 50,
      raw: JSON.parse(seedProcessing),
    });
  });

  it('the seed completed document → succeeded with no public URL (the relay serves the content)', () => {
    expect(parseOpenaiVideosStatus(JSON.parse(seedCompleted))).toEqual({
      status: 'succeeded',
      progress: 100,
      videoUrls: [],
      raw: JSON.parse(seedCompleted),
    });
  });

  it.each([
    ['', 'submitted'],
    ['in_progress', 'processing'],
    ['completed', 'succeeded'],
    ['failure', 'failed'],
    ['failed', 'failed'],
  ])('"%s" → %s', (status, expected) => {
    expect(parseOpenaiVideosStatus({ id: 'v', status })?.status).toBe(expected);
  });

  it('failure carries fail_reason as the error message', () => {
    expect(parseOpenaiVideosStatus({ id: 'v', status: 'failure', fail_reason: 'failed to download image' })?.error).toEqual({
      code: 'generation_failed',
      message: 'failed to download image',
      source: 'provider',
    });
    expect(parseOpenaiVideosStatus({ id: 'v', status: 'failure' })?.error?.message).toBe('the provider reported the video failed');
  });

  it('other statuses change nothing; a missing status is malformed', () => {
    expect(parseOpenaiVideosStatus({ id: 'v', status: 'queued' })).toBeNull();
    expect(parseOpenaiVideosStatus({ id: 'v', status: 'cancelled' })).toBeNull();
    expect(() => parseOpenaiVideosStatus({ id: 'v' })).toThrow(MalformedPayloadError);
    expect(() => parseOpenaiVideosStatus('completed')).toThrow(MalformedPayloadError);
  });
});

/** A fetch that answers every call with one canned response and records what it was asked. */
function cannedFetch(status: number, body: unknown) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchFn: FetchFn = async (input, init) => {
    calls.push({ url: String(input), init: init ?? {} });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  };
  return { calls, fetchFn };
}

describe('openai-videos calls and content (no network)', () => {
  it('submit POSTs /v1/videos and reads the seed answer', async () => {
    const { calls, fetchFn } = cannedFetch(200, JSON.parse(seedSubmitResponse));
    const result = await createOpenaiVideosAdapter(configWith(''), fetchFn).submit(base, null);
    expect(result.taskId).toBe(SEED_TASK);
    expect(calls[0]!.url).toBe('http://ov.test/v1/videos');
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual(buildOpenaiVideosSubmit(base).body);
  });

  it('fetchStatus GETs /v1/videos/{id} with the id URL-encoded', async () => {
    const { calls, fetchFn } = cannedFetch(200, JSON.parse(seedProcessing));
    expect((await createOpenaiVideosAdapter(configWith(''), fetchFn).fetchStatus('a/b+c='))?.status).toBe('processing');
    expect(calls[0]!.url).toBe('http://ov.test/v1/videos/a%2Fb%2Bc%3D');
  });

  it("the seed's 400 error body is a final provider error with its message", async () => {
    const { fetchFn } = cannedFetch(400, JSON.parse(seedInterpolationError));
    const err = await createOpenaiVideosAdapter(configWith(''), fetchFn).submit(base, null).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderCallError);
    expect((err as ProviderCallError).failure).toMatchObject({ retryable: false, status: 400, message: 'Your use case is currently not supported.' });
  });

  it('the video needs the provider key: keyed content at /v1/videos/{id}/content', () => {
    expect(adapter.keyedContent).toBe(true);
    expect(adapter.contentPath?.(SEED_TASK)).toBe(`/v1/videos/${SEED_TASK}/content`);
    expect(adapter.contentPath?.('a/b+c=')).toBe('/v1/videos/a%2Fb%2Bc%3D/content');
  });
});

function signature(secret: string, id: string, timestamp: string, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

const NOW = new Date('2026-11-22T10:00:00Z');
const NOW_S = String(NOW.getTime() / 1000);
const thinEvent = JSON.stringify({
  id: 'evt_abc',
  object: 'event',
  created_at: NOW.getTime() / 1000,
  type: 'video.completed',
  data: { id: SEED_TASK },
});

function webhook(body: string, headers: Record<string, string>): CallbackRequest {
  return { headers, raw: new TextEncoder().encode(body), body: JSON.parse(body) };
}

function signedWebhook(body: string, opts: { secret?: string; timestamp?: string; signatures?: string } = {}): CallbackRequest {
  const timestamp = opts.timestamp ?? NOW_S;
  return webhook(body, {
    'content-type': 'application/json',
    'webhook-id': 'msg_1',
    'webhook-timestamp': timestamp,
    'webhook-signature': opts.signatures ?? signature(opts.secret ?? SECRET, 'msg_1', timestamp, body),
  });
}

describe('openai-videos Standard Webhooks', () => {
  it('the Standard Webhooks reference vector verifies', () => {
    const req = webhook('{"test": 2432232314}', {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    });
    expect(verifyStandardWebhook(SECRET, req, new Date(1614265330 * 1000))).toEqual({ ok: true });
  });

  it('a correctly signed webhook verifies', () => {
    expect(signedAdapter.verifyCallback!(signedWebhook(thinEvent), NOW)).toEqual({ ok: true });
  });

  it('a signature made with another secret is refused', () => {
    const other = `whsec_${Buffer.from('another secret of 24 bytes').toString('base64')}`;
    expect(signedAdapter.verifyCallback!(signedWebhook(thinEvent, { secret: other }), NOW)).toMatchObject({ ok: false });
  });

  it('a timestamp more than 5 minutes from now is refused, in either direction', () => {
    for (const timestamp of [String(Number(NOW_S) - 301), String(Number(NOW_S) + 301)]) {
      expect(signedAdapter.verifyCallback!(signedWebhook(thinEvent, { timestamp }), NOW)).toEqual({
        ok: false,
        reason: 'webhook-timestamp is more than 5 minutes from now',
      });
    }
    expect(signedAdapter.verifyCallback!(signedWebhook(thinEvent, { timestamp: String(Number(NOW_S) - 299) }), NOW)).toEqual({ ok: true });
  });

  it('a body changed after signing is refused', () => {
    const req = signedWebhook(thinEvent);
    const tampered = webhook(thinEvent.replace('video.completed', 'video.failed'), req.headers);
    expect(signedAdapter.verifyCallback!(tampered, NOW)).toMatchObject({ ok: false });
  });

  it('during a rotation, one matching signature among several is enough', () => {
    const old = `whsec_${Buffer.from('the previous secret, 24B').toString('base64')}`;
    const signatures = `${signature(old, 'msg_1', NOW_S, thinEvent)} ${signature(SECRET, 'msg_1', NOW_S, thinEvent)}`;
    expect(signedAdapter.verifyCallback!(signedWebhook(thinEvent, { signatures }), NOW)).toEqual({ ok: true });
    const onlyOld = signature(old, 'msg_1', NOW_S, thinEvent);
    expect(signedAdapter.verifyCallback!(signedWebhook(thinEvent, { signatures: onlyOld }), NOW)).toMatchObject({ ok: false });
  });

  it('missing headers, a non-numeric timestamp and other signature versions are refused', () => {
    expect(signedAdapter.verifyCallback!(webhook(thinEvent, {}), NOW)).toMatchObject({ ok: false });
    expect(signedAdapter.verifyCallback!(signedWebhook(thinEvent, { timestamp: 'soon' }), NOW)).toEqual({
      ok: false,
      reason: 'webhook-timestamp is not unix seconds',
    });
    const v2 = signature(SECRET, 'msg_1', NOW_S, thinEvent).replace(/^v1,/, 'v2,');
    expect(signedAdapter.verifyCallback!(signedWebhook(thinEvent, { signatures: v2 }), NOW)).toMatchObject({ ok: false });
  });

  it('signs only with a webhook_secret: without one there are no signed callbacks to verify', () => {
    expect(signedAdapter.signedCallbacks).toBe(true);
    expect(adapter.signedCallbacks).toBe(false);
    expect(adapter.verifyCallback).toBeUndefined();
    expect(adapter.callbackHeaders).toEqual(['content-type', 'user-agent', 'webhook-id', 'webhook-timestamp', 'webhook-signature']);
  });

  it('the delivery id is the webhook-id header', () => {
    expect(signedAdapter.callbackDeliveryId!(signedWebhook(thinEvent))).toBe('msg_1');
    expect(signedAdapter.callbackDeliveryId!(webhook(thinEvent, {}))).toBeNull();
  });

  it('a thin event names the video and leaves the status to a fetch', () => {
    expect(signedAdapter.parseCallback(signedWebhook(thinEvent))).toEqual({ taskId: SEED_TASK, observation: null, thin: true });
  });

  it('a full video object is read like a status document', () => {
    const parsed = signedAdapter.parseCallback(signedWebhook(seedCompleted));
    expect(parsed).toMatchObject({ taskId: SEED_TASK, observation: { status: 'succeeded', videoUrls: [] } });
    expect(parsed.thin).toBeFalsy();
  });

  it('an event that names no video is malformed', () => {
    const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'video.completed', data: {} });
    expect(() => signedAdapter.parseCallback(signedWebhook(body))).toThrow(MalformedPayloadError);
  });
});
