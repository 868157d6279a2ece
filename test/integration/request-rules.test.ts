import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulator, startEmulator } from '../../src/emulators/index.js';
import { dbKind } from '../helpers/db.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';

/**
 * Every request rule of SPEC "Request rules", through `POST /v1/jobs`: a request that keeps the rule
 * is accepted, one that breaks it is a 400 naming the field and the rule, and no request of either
 * reaches the provider here (the app runs without its submit worker).
 */

const ref = (n: number) => Array.from({ length: n }, (_, i) => `https://img.example/ref${i}.png`);
const img = (n: number) => Array.from({ length: n }, (_, i) => `https://img.example/frame${i}.png`);

type Case = [rule: string, pass: Record<string, unknown>, fail: Record<string, unknown>, field: string];

const toapis: Case[] = [
  ['prompt required', { prompt: 'x' }, {}, 'prompt'],
  ['aspect_ratio 16:9 | 9:16', { prompt: 'x', aspect_ratio: '9:16' }, { prompt: 'x', aspect_ratio: '1:1' }, 'aspect_ratio'],
  ['duration 6 | 10', { prompt: 'x', duration: 10 }, { prompt: 'x', duration: 8 }, 'duration'],
  ['resolution 720P only', { prompt: 'x', resolution: '720P' }, { prompt: 'x', resolution: '1080P' }, 'resolution'],
  ['model gemini_omni', { model: 'gemini_omni', prompt: 'x' }, { model: 'sora', prompt: 'x' }, 'model'],
];

const aivideoapi: Case[] = [
  ['prompt required', { prompt: 'x' }, { resolution: '720p' }, 'prompt'],
  ['mode fast | quality | lite', { prompt: 'x', provider_options: { mode: 'quality' } }, { prompt: 'x', provider_options: { mode: 'turbo' } }, 'provider_options.mode'],
  ['resolution 720p | 1080p | 4k', { prompt: 'x', resolution: '4k' }, { prompt: 'x', resolution: '480p' }, 'resolution'],
  ['aspect 16:9 | 9:16 | Auto', { prompt: 'x', aspect_ratio: 'Auto' }, { prompt: 'x', aspect_ratio: '1:1' }, 'aspect_ratio'],
  ['first-and-last-frames takes 1–2 images', { prompt: 'x', images: img(2) }, { prompt: 'x', images: img(3) }, 'images'],
  ['reference-to-video takes 1–3 images', { prompt: 'x', reference_images: ref(3) }, { prompt: 'x', reference_images: ref(4) }, 'reference_images'],
  [
    'reference-to-video only with mode fast',
    { prompt: 'x', reference_images: ref(1), provider_options: { mode: 'fast' } },
    { prompt: 'x', reference_images: ref(1), provider_options: { mode: 'quality' } },
    'provider_options.mode',
  ],
  [
    'reference-to-video only with aspect 16:9 or 9:16',
    { prompt: 'x', reference_images: ref(1), aspect_ratio: '9:16' },
    { prompt: 'x', reference_images: ref(1), aspect_ratio: 'Auto' },
    'aspect_ratio',
  ],
  ['seed 10000–99999', { prompt: 'x', seed: 12345 }, { prompt: 'x', seed: 5 }, 'seed'],
  [
    'veo-3-extend needs extend_task_id',
    { model: 'veo-3-extend', prompt: 'x', provider_options: { extend_task_id: 'abc' } },
    { model: 'veo-3-extend', prompt: 'x' },
    'provider_options.extend_task_id',
  ],
];

const vgModel = 'veo3.1-video-720p';
const videoGenerations: Case[] = [
  ['known models', { model: 'veo3.1-fast-video-4k', prompt: 'x' }, { model: 'veo3', prompt: 'x' }, 'model'],
  ['duration 4 | 6 | 8', { model: vgModel, prompt: 'x', duration: 4 }, { model: vgModel, prompt: 'x', duration: 5 }, 'duration'],
  [
    'duration not used for extension',
    { model: vgModel, prompt: 'continue', provider_options: { video: 'https://v.example/a.mp4' } },
    { model: vgModel, prompt: 'continue', provider_options: { video: 'https://v.example/a.mp4' }, duration: 8 },
    'duration',
  ],
  [
    "size matches the model's tier",
    { model: 'veo3.1-video-1080p', prompt: 'x', resolution: '1080p' },
    { model: 'veo3.1-video-720p', prompt: 'x', resolution: '1080p' },
    'resolution',
  ],
  ['multi-image reference takes 2–3 images', { model: vgModel, prompt: 'x', reference_images: ref(2) }, { model: vgModel, prompt: 'x', reference_images: ref(1) }, 'reference_images'],
  [
    'last_image needs image',
    { model: vgModel, prompt: 'x', images: img(1), provider_options: { last_image: 'https://img.example/end.png' } },
    { model: vgModel, prompt: 'x', provider_options: { last_image: 'https://img.example/end.png' } },
    'last_image',
  ],
  ['at most 3 reference images', { model: vgModel, prompt: 'x', reference_images: ref(3) }, { model: vgModel, prompt: 'x', reference_images: ref(4) }, 'reference_images'],
];

const std = 'veo-3.1-generate-preview';
const fast = 'veo-3.1-fast-generate-preview';
const openaiVideos: Case[] = [
  ['known models', { model: fast, prompt: 'x' }, { model: 'veo-2', prompt: 'x' }, 'model'],
  ['two images need duration 8', { model: fast, prompt: 'x', images: img(2), duration: 8 }, { model: fast, prompt: 'x', images: img(2), duration: 6 }, 'duration'],
  ['reference images only on the standard model', { model: std, prompt: 'x', reference_images: ref(1), duration: 8 }, { model: fast, prompt: 'x', reference_images: ref(1), duration: 8 }, 'model'],
  ['at most 3 reference images', { model: std, prompt: 'x', reference_images: ref(3), duration: 8 }, { model: std, prompt: 'x', reference_images: ref(4), duration: 8 }, 'reference_images'],
  ['reference images 16:9 only', { model: std, prompt: 'x', reference_images: ref(1), duration: 8, aspect_ratio: '16:9' }, { model: std, prompt: 'x', reference_images: ref(1), duration: 8, aspect_ratio: '9:16' }, 'aspect_ratio'],
  ['reference images 8 s', { model: std, prompt: 'x', reference_images: ref(1), duration: 8 }, { model: std, prompt: 'x', reference_images: ref(1), duration: 6 }, 'duration'],
  ['reference images never with images', { model: std, prompt: 'x', reference_images: ref(1), duration: 8 }, { model: std, prompt: 'x', reference_images: ref(1), images: img(1), duration: 8 }, 'reference_images'],
  [
    'personGeneration allow_all refused',
    { model: fast, prompt: 'x', provider_options: { personGeneration: 'allow_adult' } },
    { model: fast, prompt: 'x', provider_options: { personGeneration: 'allow_all' } },
    'personGeneration',
  ],
];

const tables = { toapis, aivideoapi, 'video-generations': videoGenerations, 'openai-videos': openaiVideos } as const;

let relay: TestRelay;
const emulators: Emulator[] = [];

beforeAll(async () => {
  const providers: Record<string, unknown> = {};
  for (const kind of Object.keys(tables) as (keyof typeof tables)[]) {
    const e = await startEmulator(kind);
    emulators.push(e);
    providers[kind] = { kind, base_url: e.baseUrl, api_key: e.apiKey };
  }
  relay = await startTestRelay(providers);
});
afterAll(async () => {
  await relay?.close();
  await Promise.all(emulators.map((e) => e.close()));
});

describe(`request rules (${dbKind})`, () => {
  for (const [kind, cases] of Object.entries(tables)) {
    describe(kind, () => {
      it.each(cases)('%s', async (_rule, pass, fail, field) => {
        const ok = await relay.api('POST', '/v1/jobs', { provider: kind, ...pass });
        expect(ok.status, JSON.stringify(await ok.clone().json())).toBe(202);

        const bad = await relay.api('POST', '/v1/jobs', { provider: kind, ...fail });
        expect(bad.status).toBe(400);
        const { error } = (await bad.json()) as { error: { code: string; details: { field: string; rule: string }[] } };
        expect(error.code).toBe('invalid_request');
        const hit = error.details.find((d) => d.field.endsWith(field));
        expect(hit, `a violation naming ${field}: ${JSON.stringify(error.details)}`).toBeDefined();
        expect(hit!.rule.startsWith(`${kind}.`)).toBe(true);
      });
    });
  }

  it('no request, accepted or refused, reached a provider', () => {
    for (const e of emulators) expect(e.requests, e.kind).toHaveLength(0);
  });

  it('an unknown provider is a 400 naming the field', async () => {
    const res = await relay.api('POST', '/v1/jobs', { provider: 'nope', prompt: 'x' });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('provider');
  });
});
