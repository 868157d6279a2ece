import { describe, expect, it } from 'vitest';
import { parseFileConfig } from '../../src/config.js';
import type { JobRequest } from '../../src/jobs/request.js';
import type { FetchFn } from '../../src/providers/http.js';
import {
  buildVideoGenerationsSubmit,
  createVideoGenerationsAdapter,
  parseVideoGenerationsStatus,
  parseVideoGenerationsSubmit,
  validateVideoGenerationsRequest,
} from '../../src/providers/video-generations.js';
import { MalformedPayloadError } from '../../src/providers/types.js';

// The status document exactly as seed 002 shows it.
const seedCompleted = `{
"id": "task_xxx",
"task_id": "task_xxx",
"object": "video.generation.job",
"model": "veo3.1-video-1080p",
"status": "completed",
"progress": 100,
"video_url": "https://example.com/output.mp4"
}`;

// The request bodies of seed 002's three curl examples.
const seedTextToVideo = `{
"model": "veo3.1-video-1080p",
"prompt": "A golden-hour street interview shot, slight handheld movement, natural city ambience, realistic human speech.",
"size": "1080p",
"aspect_ratio": "16:9",
"duration": 8,
"extra_body": {
"generate_audio": true,
"negative_prompt": "watermark, blur",
"seed": 7
}
}`;
const seedImageToVideo = `{
"model": "veo3.1-video-720p",
"prompt": "A product slowly rotates on a clean studio desk with soft reflected light.",
"image": "https://example.com/keyframe.png",
"size": "720p",
"aspect_ratio": "16:9",
"duration": 6,
"extra_body": {
"generate_audio": false,
"negative_prompt": "artifacts, camera shake"
}
}`;
const seedFirstAndLastFrames = `{
"model": "veo3.1-fast-video-1080p",
"prompt": "Transition naturally from the first frame to the last frame, preserving subject identity and camera continuity.",
"image": "https://example.com/start-frame.png",
"last_image": "https://example.com/end-frame.png",
"size": "1080p",
"aspect_ratio": "16:9",
"duration": 6
}`;

function configFor(name: string) {
  const json = `{"providers":{"${name}":{"kind":"video-generations","base_url":"http://vg.test","api_key":"k"}}}`;
  return { ...parseFileConfig(json, {}).providers[name]!, name };
}

const adapter = createVideoGenerationsAdapter(configFor('vg'), fetch);

const base: JobRequest = { provider: 'vg', model: 'veo3.1-video-1080p', prompt: 'A drone shot over mountains at sunset' };
const img = (n: number) => Array.from({ length: n }, (_, i) => `https://x.test/${i}.png`);

describe('video-generations request rules (seed 002)', () => {
  const passing: [string, Partial<JobRequest>][] = [
    ['the minimal request', {}],
    ['every model', { model: 'veo3.1-fast-video-4k' }],
    ['duration 4', { duration: 4 }],
    ['duration 8', { duration: 8 }],
    ['a resolution matching the model tier', { resolution: '1080p' }],
    ['a 4k resolution on a 4k model', { model: 'veo3.1-video-4k', resolution: '4k' }],
    ['aspect_ratio 9:16', { aspect_ratio: '9:16' }],
    ['one image (image-to-video)', { images: img(1) }],
    ['two images (first and last frames)', { images: img(2) }],
    ['two reference images', { reference_images: img(2) }],
    ['three reference images', { reference_images: img(3) }],
    ['an extension without a prompt or duration', { prompt: undefined, provider_options: { video: 'https://x.test/v.mp4' } }],
    ['a native last_image with a native image', { provider_options: { image: 'https://x.test/a.png', last_image: 'https://x.test/b.png' } }],
    ['a last_image next to one normalised image', { images: img(1), provider_options: { last_image: 'https://x.test/b.png' } }],
    ['audio, negative_prompt and seed', { audio: false, negative_prompt: 'blur', seed: 7 }],
    ['extra native extra_body fields', { provider_options: { extra_body: { person_generation: 'allow_adult' } } }],
  ];
  it.each(passing)('accepts %s', (_, change) => {
    expect(validateVideoGenerationsRequest({ ...base, ...change })).toEqual([]);
  });

  const failing: [string, Partial<JobRequest>, string, string][] = [
    ['a missing model', { model: undefined }, 'model', 'video-generations.model'],
    ['an unknown model', { model: 'veo-3' }, 'model', 'video-generations.model'],
    ['a missing prompt', { prompt: undefined }, 'prompt', 'video-generations.prompt'],
    ['duration 5', { duration: 5 }, 'duration', 'video-generations.duration'],
    ['a native duration 10', { provider_options: { duration: 10 } }, 'provider_options.duration', 'video-generations.duration'],
    [
      'a duration on an extension',
      { duration: 8, provider_options: { video: 'https://x.test/v.mp4' } },
      'duration',
      'video-generations.extension.duration',
    ],
    ['a resolution off the model tier', { resolution: '720p' }, 'resolution', 'video-generations.size'],
    ['a native size off the model tier', { provider_options: { size: '4k' } }, 'provider_options.size', 'video-generations.size'],
    ['aspect_ratio 1:1', { aspect_ratio: '1:1' }, 'aspect_ratio', 'video-generations.aspect_ratio'],
    ['three images', { images: img(3) }, 'images', 'video-generations.images'],
    ['one reference image', { reference_images: img(1) }, 'reference_images', 'video-generations.reference_images'],
    ['four reference images', { reference_images: img(4) }, 'reference_images', 'video-generations.reference_images'],
    ['native images that are not a list', { provider_options: { images: 'https://x.test/a.png' } }, 'provider_options.images', 'video-generations.reference_images'],
    ['a last_image without an image', { provider_options: { last_image: 'https://x.test/b.png' } }, 'provider_options.last_image', 'video-generations.last_image'],
    ['frames together with reference images', { images: img(1), reference_images: img(2) }, 'reference_images', 'video-generations.images_exclusive'],
    ['an extra_body that is not an object', { provider_options: { extra_body: 'x' } }, 'provider_options.extra_body', 'video-generations.extra_body'],
    ['a native field replacing a normalised one', { images: img(1), provider_options: { image: 'https://x.test/other.png' } }, 'provider_options.image', 'video-generations.provider_options'],
    ['a native extra_body field replacing a normalised one', { seed: 1, provider_options: { extra_body: { seed: 2 } } }, 'provider_options.extra_body.seed', 'video-generations.provider_options'],
  ];
  it.each(failing)('refuses %s, naming the field and the rule', (_, change, field, rule) => {
    const violations = validateVideoGenerationsRequest({ ...base, ...change });
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ field, rule });
    expect(violations[0]!.message).toContain(field);
  });
});

describe('video-generations submit body', () => {
  it('maps a text-to-video request to seed 002 example body, audio/negative_prompt/seed in extra_body', () => {
    const req: JobRequest = {
      provider: 'vg',
      model: 'veo3.1-video-1080p',
      prompt: 'A golden-hour street interview shot, slight handheld movement, natural city ambience, realistic human speech.',
      resolution: '1080p',
      aspect_ratio: '16:9',
      duration: 8,
      audio: true,
      negative_prompt: 'watermark, blur',
      seed: 7,
    };
    expect(validateVideoGenerationsRequest(req)).toEqual([]);
    expect(buildVideoGenerationsSubmit(req)).toEqual({ path: '/v1/video/generations', body: JSON.parse(seedTextToVideo) });
  });

  it('maps one image to `image` (seed 002 image-to-video example)', () => {
    const req: JobRequest = {
      provider: 'vg',
      model: 'veo3.1-video-720p',
      prompt: 'A product slowly rotates on a clean studio desk with soft reflected light.',
      images: ['https://example.com/keyframe.png'],
      resolution: '720p',
      aspect_ratio: '16:9',
      duration: 6,
      audio: false,
      negative_prompt: 'artifacts, camera shake',
    };
    expect(validateVideoGenerationsRequest(req)).toEqual([]);
    expect(buildVideoGenerationsSubmit(req).body).toEqual(JSON.parse(seedImageToVideo));
  });

  it('maps two images to `image` and `last_image` (seed 002 first-and-last-frames example)', () => {
    const req: JobRequest = {
      provider: 'vg',
      model: 'veo3.1-fast-video-1080p',
      prompt: 'Transition naturally from the first frame to the last frame, preserving subject identity and camera continuity.',
      images: ['https://example.com/start-frame.png', 'https://example.com/end-frame.png'],
      resolution: '1080p',
      aspect_ratio: '16:9',
      duration: 6,
    };
    expect(validateVideoGenerationsRequest(req)).toEqual([]);
    expect(buildVideoGenerationsSubmit(req).body).toEqual(JSON.parse(seedFirstAndLastFrames));
  });

  it('maps reference_images to the multi-image `images`', () => {
    expect(buildVideoGenerationsSubmit({ ...base, reference_images: img(3) }).body).toEqual({
      model: 'veo3.1-video-1080p',
      prompt: base.prompt,
      images: img(3),
    });
  });

  it('merges provider_options into the top level and provider_options.extra_body into extra_body', () => {
    const req: JobRequest = {
      provider: 'vg',
      model: 'veo3.1-fast-video-720p',
      prompt: 'continue the shot',
      audio: true,
      provider_options: { video: 'https://x.test/v.mp4', extra_body: { person_generation: 'allow_adult' } },
    };
    expect(buildVideoGenerationsSubmit(req).body).toEqual({
      model: 'veo3.1-fast-video-720p',
      prompt: 'continue the shot',
      video: 'https://x.test/v.mp4',
      extra_body: { generate_audio: true, person_generation: 'allow_adult' },
    });
  });

  it('sends no callback URL: the kind is polled', () => {
    expect(JSON.stringify(adapter.buildSubmit(base, 'https://relay.test/cb').body)).not.toContain('relay.test');
  });
});

describe('video-generations submit answer', () => {
  it('takes task_id, else id, and reports the task submitted', () => {
    expect(parseVideoGenerationsSubmit({ id: 'a', task_id: 'task_1', status: 'queued' })).toMatchObject({
      taskId: 'task_1',
      observation: { status: 'submitted' },
    });
    expect(parseVideoGenerationsSubmit({ id: 'task_2', status: 'queued' }).taskId).toBe('task_2');
    expect(parseVideoGenerationsSubmit({ id: 'task_3' }).observation?.status).toBe('submitted');
    expect(parseVideoGenerationsSubmit({ id: 'task_4', status: 'unknown' }).observation?.status).toBe('submitted');
  });

  it('an answer that already reports progress is read as such', () => {
    expect(parseVideoGenerationsSubmit({ task_id: 't', status: 'in_progress', progress: 10 }).observation).toMatchObject({
      status: 'processing',
      progress: 10,
    });
  });

  it('an answer that names no task is malformed', () => {
    expect(() => parseVideoGenerationsSubmit({ status: 'queued' })).toThrow(MalformedPayloadError);
    expect(() => parseVideoGenerationsSubmit({ id: '', task_id: '' })).toThrow(MalformedPayloadError);
    expect(() => parseVideoGenerationsSubmit('task_1')).toThrow(MalformedPayloadError);
  });
});

describe('video-generations status (seed 002)', () => {
  it('the seed completed document → succeeded with video_url', () => {
    const obs = parseVideoGenerationsStatus(JSON.parse(seedCompleted));
    expect(obs).toMatchObject({ status: 'succeeded', progress: 100, videoUrls: ['https://example.com/output.mp4'] });
    expect(obs?.raw).toEqual(JSON.parse(seedCompleted));
  });

  it.each([
    ['queued', 'submitted'],
    ['in_progress', 'processing'],
    ['completed', 'succeeded'],
    ['failed', 'failed'],
  ])('%s → %s', (status, expected) => {
    expect(parseVideoGenerationsStatus({ id: 't', task_id: 't', status, progress: 40 })).toMatchObject({ status: expected, progress: 40 });
  });

  it('unknown, and any status the relay does not know, change nothing', () => {
    expect(parseVideoGenerationsStatus({ id: 't', status: 'unknown' })).toBeNull();
    expect(parseVideoGenerationsStatus({ id: 't', status: 'paused' })).toBeNull();
  });

  it('completed without a video_url succeeds with no URLs', () => {
    expect(parseVideoGenerationsStatus({ id: 't', status: 'completed' })?.videoUrls).toEqual([]);
  });

  it.each([
    ['an error object', { error: { code: 'content_policy', message: 'blocked' } }, 'content_policy', 'blocked'],
    ['an error string', { error: 'upstream timed out' }, 'generation_failed', 'upstream timed out'],
    ['fail_reason', { fail_reason: 'no quota upstream' }, 'generation_failed', 'no quota upstream'],
    ['message', { message: 'bad frame' }, 'generation_failed', 'bad frame'],
    ['nothing', {}, 'generation_failed', 'the provider reported the task failed'],
  ])('failed with %s → a provider error', (_, extra, code, message) => {
    expect(parseVideoGenerationsStatus({ id: 't', status: 'failed', ...extra })?.error).toEqual({ code, message, source: 'provider' });
  });

  it('a document without a status, or not an object, is malformed', () => {
    expect(() => parseVideoGenerationsStatus({ id: 't' })).toThrow(MalformedPayloadError);
    expect(() => parseVideoGenerationsStatus([JSON.parse(seedCompleted)])).toThrow(MalformedPayloadError);
  });
});

/** A fetch that answers every call with one canned response and records what it was asked. */
function cannedFetch(body: unknown) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchFn: FetchFn = async (input, init) => {
    calls.push({ url: String(input), init: init ?? {} });
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  return { calls, fetchFn };
}

describe('video-generations adapter (no network)', () => {
  it('is polled: no callbacks, no signature, public result URLs', () => {
    expect(adapter).toMatchObject({ signedCallbacks: false, keyedContent: false, callbackHeaders: [] });
    expect(adapter.verifyCallback).toBeUndefined();
    expect(() => adapter.parseCallback({ headers: {}, raw: new Uint8Array(), body: JSON.parse(seedCompleted) })).toThrow(
      new MalformedPayloadError('this provider sends no callbacks'),
    );
  });

  it('submit POSTs /v1/video/generations and reads the answer', async () => {
    const { calls, fetchFn } = cannedFetch({ id: 'task_1', task_id: 'task_1', status: 'queued' });
    const result = await createVideoGenerationsAdapter(configFor('vg'), fetchFn).submit(base, null);
    expect(result).toMatchObject({ taskId: 'task_1', observation: { status: 'submitted' } });
    expect(calls[0]!.url).toBe('http://vg.test/v1/video/generations');
    expect(calls[0]!.init.method).toBe('POST');
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual(buildVideoGenerationsSubmit(base).body);
  });

  it('fetchStatus GETs /v1/videos/{task_id}, the id URL-encoded', async () => {
    const { calls, fetchFn } = cannedFetch(JSON.parse(seedCompleted));
    const obs = await createVideoGenerationsAdapter(configFor('vg'), fetchFn).fetchStatus('task/x');
    expect(obs?.status).toBe('succeeded');
    expect(calls[0]!.url).toBe('http://vg.test/v1/videos/task%2Fx');
    expect(calls[0]!.init.method).toBe('GET');
  });
});
