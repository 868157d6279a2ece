import type { ProviderConfig } from '../config.js';
import type { JobError } from '../db/schema.js';
import type { JobRequest, RuleViolation } from '../jobs/request.js';
import { normaliseProgress, type Observation } from '../jobs/states.js';
import { asObject, nonEmptyString, objectDocument, observedStatus } from './documents.js';
import { callProvider, type FetchFn } from './http.js';
import { compact, Rules } from './rules.js';
import { MalformedPayloadError, type ProviderAdapter, type SubmitRequest, type SubmitResult } from './types.js';

/**
 * video-generations (seed 002, Veo 3.1). Submit: `POST /v1/video/generations`; status:
 * `GET /v1/videos/{task_id}` → `{id, task_id, status, progress, video_url}` with
 * `queued → in_progress → completed | failed`. No callbacks: jobs are polled.
 */

const statusMap: Record<string, Observation['status']> = {
  queued: 'submitted',
  in_progress: 'processing',
  completed: 'succeeded',
  failed: 'failed',
};

/** Each public model name carries its resolution tier, which `size` must match. */
const MODEL_TIERS: Record<string, string> = {
  'veo3.1-video-720p': '720p',
  'veo3.1-video-1080p': '1080p',
  'veo3.1-video-4k': '4k',
  'veo3.1-fast-video-720p': '720p',
  'veo3.1-fast-video-1080p': '1080p',
  'veo3.1-fast-video-4k': '4k',
};
const MODELS = Object.keys(MODEL_TIERS);
const DURATIONS = [4, 6, 8] as const;
const ASPECTS = ['16:9', '9:16'] as const;

/** `error` (a string or `{code, message}`), `fail_reason` or `message`, whichever the provider filled in. */
function failureOf(doc: Record<string, unknown>): JobError {
  const err = asObject(doc.error);
  return {
    code: nonEmptyString(err?.code) ?? 'generation_failed',
    message:
      nonEmptyString(err?.message) ??
      nonEmptyString(doc.error) ??
      nonEmptyString(doc.fail_reason) ??
      nonEmptyString(doc.message) ??
      'the provider reported the task failed',
    source: 'provider',
  };
}

function readObservation(doc: Record<string, unknown>): Observation | null {
  const obs = observedStatus(doc, statusMap);
  if (!obs) return null;
  const { status } = obs;
    if (status === 'succeeded') obs.videoUrls = typeof doc.video_url === 'string' && doc.video_url ? [doc.video_url] : [];
  if (status === 'failed') obs.error = failureOf(doc);
  return obs;
}

/** Null for `unknown` and any other status the relay does not act on. */
export function parseVideoGenerationsStatus(body: unknown): Observation | null {
  return readObservation(objectDocument(body));
}

/**
 * Seed 002's rules, checked on the body that will be sent so that native fields given in
 * `provider_options` are held to them too. `prompt` is only "strongly recommended" by the seed; it is
 * required here except for a video extension, whose intent the source video can carry.
 */
export function validateVideoGenerationsRequest(req: JobRequest): RuleViolation[] {
  const r = new Rules();
  const options = req.provider_options ?? {};
  const body = buildVideoGenerationsSubmit(req).body;
  /** The field the caller wrote a native value in: `provider_options.<native>`, else the normalised one it maps from. */
  const field = (native: string, normalised = native) => (options[native] !== undefined ? `provider_options.${native}` : normalised);
  const extension = body.video !== undefined;

  r.required(field('model'), body.model, 'video-generations.model');
  r.oneOf(field('model'), body.model, MODELS, 'video-generations.model');
  if (!extension) {
    r.required(field('prompt'), body.prompt, 'video-generations.prompt', 'unless extending a video (provider_options.video)');
  }
  r.oneOf(field('aspect_ratio'), body.aspect_ratio, ASPECTS, 'video-generations.aspect_ratio');
  if (extension && body.duration !== undefined) {
    const durationField = field('duration');
    const why = `${durationField} is not used for a video extension (provider_options.video); remove it`;
    r.fail(durationField, 'video-generations.extension.duration', why);
  } else {
    r.oneOf(field('duration'), body.duration, DURATIONS, 'video-generations.duration');
  }
  const tier = typeof body.model === 'string' ? MODEL_TIERS[body.model] : undefined;
  if (tier && body.size !== undefined && body.size !== tier) {
    const sizeField = field('size', 'resolution');
    const why = `${sizeField} must be "${tier}" to match model ${String(body.model)}; got ${JSON.stringify(body.size)}`;
    r.fail(sizeField, 'video-generations.size', why);
  }

  const images = req.images?.length ?? 0;
  if (images > 2) {
    const why = `images takes the first frame, or the first and last frames (1–2); got ${images}; use reference_images for a multi-image reference`;
    r.fail('images', 'video-generations.images', why);
  }
  if (body.last_image !== undefined && body.image === undefined) {
    const lastField = field('last_image');
    r.fail(lastField, 'video-generations.last_image', `${lastField} (the last frame) needs a first frame (image)`);
  }
  if (body.images !== undefined) {
    const refField = field('images', 'reference_images');
    if (!Array.isArray(body.images)) r.fail(refField, 'video-generations.reference_images', `${refField} must be an array of images`);
    else r.count(refField, body.images, 2, 3, 'video-generations.reference_images', 'for a multi-image reference');
    // The seed documents frames and multi-image reference as different modes; sending both would leave the pick to the provider.
    if (body.image !== undefined) {
      const why = `${refField} (a multi-image reference) cannot be combined with a first (and last) frame`;
      r.fail(refField, 'video-generations.images_exclusive', why);
    }
  }

  const { extra_body: extraOptions, ...topOptions } = options;
  if (extraOptions !== undefined && !asObject(extraOptions)) {
    r.fail('provider_options.extra_body', 'video-generations.extra_body', 'provider_options.extra_body must be an object');
  }
  // A native field may add to the request, not silently replace what one of its own fields says.
  const { top, extra } = mappedFields(req);
  const replaced = [
    ...Object.keys(topOptions).filter((key) => key in top),
    ...Object.keys(asObject(extraOptions) ?? {})
      .filter((key) => key in extra)
      .map((key) => `extra_body.${key}`),
  ];
  for (const key of replaced) {
    const why = `provider_options.${key} would replace a value the request already sets; give it once`;
    r.fail(`provider_options.${key}`, 'video-generations.provider_options', why);
  }
  return r.violations;
}

/** The body fields the normalised request sets, before `provider_options` are merged in. */
function mappedFields(req: JobRequest) {
  return {
    top: compact({
      model: req.model,
      prompt: req.prompt,
      // One image is the first frame; a second one is the last frame.
      image: req.images?.[0],
      last_image: req.images?.[1],
      // The provider's `images` is the multi-image reference.
      images: req.reference_images?.length ? req.reference_images : undefined,
      size: req.resolution,
      aspect_ratio: req.aspect_ratio,
      duration: req.duration,
    }),
    extra: compact({ generate_audio: req.audio, negative_prompt: req.negative_prompt, seed: req.seed }),
  };
}

/** The native body. Polled kind: there is no callback URL to send. */
export function buildVideoGenerationsSubmit(req: JobRequest): SubmitRequest {
  const { top, extra } = mappedFields(req);
  const { extra_body: extraOptions, ...options } = req.provider_options ?? {};
  const extraBody = { ...extra, ...asObject(extraOptions) };
  return {
    path: '/v1/video/generations',
    // Native fields (`video` for an extension, `image`, `last_image`, …) go in at the top level.
    body: compact({ ...top, extra_body: Object.keys(extraBody).length ? extraBody : undefined, ...options }),
  };
}

/** `{id, task_id, status, …}`: the task id is `task_id`, else `id`. */
export function parseVideoGenerationsSubmit(body: unknown): SubmitResult {
  const doc = asObject(body);
  if (!doc) throw new MalformedPayloadError('submit answer is not a JSON object');
  const taskId = nonEmptyString(doc.task_id) ?? nonEmptyString(doc.id);
  if (!taskId) throw new MalformedPayloadError('submit answer names no task_id or id');
  const reported = typeof doc.status === 'string' ? readObservation(doc) : null;
  return { taskId, observation: reported ?? { status: 'submitted', progress: normaliseProgress(doc.progress), raw: doc } };
}

export function createVideoGenerationsAdapter(config: ProviderConfig, fetchFn: FetchFn): ProviderAdapter {
  return {
    config,
    callbackHeaders: [],
    signedCallbacks: false,
    keyedContent: false,
    validateRequest: validateVideoGenerationsRequest,
    buildSubmit: buildVideoGenerationsSubmit,
    parseSubmitResponse: parseVideoGenerationsSubmit,
    parseStatus: parseVideoGenerationsStatus,
    parseCallback() {
      throw new MalformedPayloadError('this provider sends no callbacks');
    },
    async submit(req, _callbackUrl, signal) {
      const { path, body } = buildVideoGenerationsSubmit(req);
      return parseVideoGenerationsSubmit(await callProvider(config, fetchFn, 'POST', path, body, signal));
    },
    async fetchStatus(taskId, signal) {
      const body = await callProvider(config, fetchFn, 'GET', `/v1/videos/${encodeURIComponent(taskId)}`, undefined, signal);
      return parseVideoGenerationsStatus(body);
    },
  };
}
