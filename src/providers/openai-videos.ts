import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ProviderConfig } from '../config.js';
import type { JobRequest, RuleViolation } from '../jobs/request.js';
import { normaliseProgress, type Observation } from '../jobs/states.js';
import { asObject, nonEmptyString, objectDocument, observedStatus } from './documents.js';
import { callProvider, type FetchFn } from './http.js';
import { compact, Rules } from './rules.js';
import {
  type CallbackRequest,
  MalformedPayloadError,
  type ParsedCallback,
  type ProviderAdapter,
  type SignatureCheck,
  type SubmitRequest,
  type SubmitResult,
} from './types.js';

/**
 * openai-videos (seed 004, Gemini Veo behind an OpenAI-style `/v1/videos`). Status:
 * `GET /v1/videos/{id}` → `{id, task_id, status, progress, fail_reason}` with
 * `"" → in_progress → completed | failure`. The video is not a public URL: it is served at
 * `/v1/videos/{id}/content` to holders of the provider key. Polled, unless the provider is set up to
 * send Standard Webhooks and `webhook_secret` holds their `whsec_` secret.
 */

const statusMap: Record<string, Observation['status']> = {
  '': 'submitted',
  in_progress: 'processing',
  completed: 'succeeded',
  failure: 'failed',
  // The seed's table says `failure`; OpenAI's own API says `failed`.
  failed: 'failed',
};

const STANDARD_MODEL = 'veo-3.1-generate-preview';
const MODELS = [STANDARD_MODEL, 'veo-3.1-fast-generate-preview'] as const;
const DURATIONS = [4, 6, 8] as const;
const ASPECTS = ['16:9', '9:16'] as const;
/** Standard Webhooks' replay window. */
const WEBHOOK_TOLERANCE_S = 5 * 60;

function readObservation(doc: Record<string, unknown>): Observation | null {
  const obs = observedStatus(doc, statusMap);
  if (!obs) return null;
  const { status } = obs;
    // The relay serves the video itself from `contentPath`, with the provider key.
  if (status === 'succeeded') obs.videoUrls = [];
  if (status === 'failed') {
    obs.error = {
      code: 'generation_failed',
      message:
        nonEmptyString(doc.fail_reason) ?? nonEmptyString(asObject(doc.error)?.message) ?? 'the provider reported the video failed',
      source: 'provider',
    };
  }
  return obs;
}

/** Null for a status the relay does not act on. */
export function parseOpenaiVideosStatus(body: unknown): Observation | null {
  return readObservation(objectDocument(body));
}

/**
 * Seed 004's rules, checked on the body that will be sent so that metadata fields given in
 * `provider_options` are held to them too.
 */
export function validateOpenaiVideosRequest(req: JobRequest): RuleViolation[] {
  const r = new Rules();
  const options = req.provider_options ?? {};
  const metadata = asObject(buildOpenaiVideosSubmit(req).body.metadata) ?? {};
  /** The field the caller wrote a metadata value in: `provider_options.<native>`, else the normalised one it maps from. */
  const field = (native: string, normalised: string) => (options[native] !== undefined ? `provider_options.${native}` : normalised);
  const durationField = field('durationSeconds', 'duration');
  const aspectField = field('aspectRatio', 'aspect_ratio');

  r.required('model', req.model, 'openai-videos.model');
  r.oneOf('model', req.model, MODELS, 'openai-videos.model');
  r.required('prompt', req.prompt, 'openai-videos.prompt');
  r.unsupported(req, ['seed', 'audio'], 'openai-videos.unsupported_field');
  r.oneOf(durationField, metadata.durationSeconds, DURATIONS, 'openai-videos.duration');
  r.oneOf(aspectField, metadata.aspectRatio, ASPECTS, 'openai-videos.aspect_ratio');
  if (metadata.personGeneration === 'allow_all') {
    const why = 'provider_options.personGeneration "allow_all" is refused by the provider; use "allow_adult" or leave it out';
    r.fail('provider_options.personGeneration', 'openai-videos.person_generation', why);
  }

  const images = req.images?.length ?? 0;
  if (images > 2) {
    r.fail('images', 'openai-videos.images', `images takes the first frame, or the first and last frames (1–2); got ${images}`);
  }
  if (images === 2 && metadata.durationSeconds !== 8) {
    r.fail(durationField, 'openai-videos.interpolation.duration', `frame interpolation (two images) needs ${durationField} 8`);
  }

  const references = metadata.referenceImages;
  if (references !== undefined) {
    const refField = field('referenceImages', 'reference_images');
    if (!Array.isArray(references)) r.fail(refField, 'openai-videos.reference.images', `${refField} must be an array`);
    else r.count(refField, references, 1, 3, 'openai-videos.reference.images', 'for reference images');
    if (req.model && req.model !== STANDARD_MODEL) {
      r.fail('model', 'openai-videos.reference.model', `${refField} work only with model ${STANDARD_MODEL}`);
    }
    if (images > 0) r.fail(refField, 'openai-videos.reference.exclusive', `${refField} cannot be combined with images`);
    if (metadata.aspectRatio !== '16:9') {
      r.fail(aspectField, 'openai-videos.reference.aspect_ratio', `${refField} need ${aspectField} 16:9`);
    }
    if (metadata.durationSeconds !== 8) {
      r.fail(durationField, 'openai-videos.reference.duration', `${refField} need ${durationField} 8`);
    }
  }

  // A native field may add to the request, not silently replace what one of its own fields says.
  const mapped = mappedMetadata(req);
  for (const key of Object.keys(options).filter((k) => k in mapped)) {
    const why = `provider_options.${key} would replace a value the request already sets; give it once`;
    r.fail(`provider_options.${key}`, 'openai-videos.provider_options', why);
  }
  return r.violations;
}

/**
 * The metadata fields the normalised request sets, before `provider_options` are merged in. Where
 * the seed allows only one value (8 s for frame interpolation and reference images, 16:9 for
 * reference images), an absent field is filled with it rather than left to the provider.
 */
function mappedMetadata(req: JobRequest) {
  const references = Boolean(req.reference_images?.length);
  const onlyEight = references || req.images?.length === 2;
  return compact({
    aspectRatio: req.aspect_ratio ?? (references && req.provider_options?.aspectRatio === undefined ? '16:9' : undefined),
    durationSeconds: req.duration ?? (onlyEight && req.provider_options?.durationSeconds === undefined ? 8 : undefined),
    negativePrompt: req.negative_prompt,
    resolution: req.resolution,
    referenceImages: req.reference_images?.length
      ? req.reference_images.map((image) => ({ image: { bytesBase64Encoded: image }, referenceType: 'asset' }))
      : undefined,
  });
}

/** The native body. Webhooks, where the provider sends them, are set up on its side: no callback URL is sent. */
export function buildOpenaiVideosSubmit(req: JobRequest): SubmitRequest {
  // Native fields (personGeneration and other Gemini parameters) belong in metadata.
  const metadata = { ...mappedMetadata(req), ...req.provider_options };
  return {
    path: '/v1/videos',
    body: compact({
      model: req.model,
      prompt: req.prompt,
      images: req.images?.length ? req.images : undefined,
      metadata: Object.keys(metadata).length ? metadata : undefined,
    }),
  };
}

/** `{id, task_id, status: "", …}`: the task id is `task_id`, else `id`. */
export function parseOpenaiVideosSubmit(body: unknown): SubmitResult {
  const doc = asObject(body);
  if (!doc) throw new MalformedPayloadError('submit answer is not a JSON object');
  const taskId = nonEmptyString(doc.task_id) ?? nonEmptyString(doc.id);
  if (!taskId) throw new MalformedPayloadError('submit answer names no task_id or id');
  const reported = typeof doc.status === 'string' ? readObservation(doc) : null;
  return { taskId, observation: reported ?? { status: 'submitted', progress: normaliseProgress(doc.progress), raw: doc } };
}

/**
 * A webhook: a thin OpenAI-style event (`{type: "video.completed", data: {id}}`), after which the relay
 * fetches the status itself, or a full video object, read like a status document.
 */
export function parseOpenaiVideosCallback({ body }: CallbackRequest): ParsedCallback {
  if (body.status !== undefined) {
    return { taskId: nonEmptyString(body.task_id) ?? nonEmptyString(body.id) ?? null, observation: parseOpenaiVideosStatus(body) };
  }
  const taskId = nonEmptyString(asObject(body.data)?.id);
  if (!taskId) throw new MalformedPayloadError('webhook names no video (data.id)');
  return { taskId, observation: null, thin: true };
}

/**
 * Standard Webhooks: `webhook-signature` lists `v1,<base64>` entries, each an HMAC-SHA256 keyed with
 * the base64-decoded secret (after `whsec_`) over `{webhook-id}.{webhook-timestamp}.{raw body}`.
 * Several entries are allowed so the sender can rotate its secret; one match is enough.
 */
export function verifyStandardWebhook(secret: string, req: CallbackRequest, now: Date): SignatureCheck {
  const id = req.headers['webhook-id'];
  const timestamp = req.headers['webhook-timestamp'];
  const signatures = req.headers['webhook-signature'];
  if (!id || !timestamp || !signatures) return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature' };
  if (!/^\d+$/.test(timestamp)) return { ok: false, reason: 'webhook-timestamp is not unix seconds' };
  if (Math.abs(now.getTime() / 1000 - Number(timestamp)) > WEBHOOK_TOLERANCE_S) {
    return { ok: false, reason: 'webhook-timestamp is more than 5 minutes from now' };
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = Buffer.from(createHmac('sha256', key).update(`${id}.${timestamp}.`).update(req.raw).digest('base64'));
  const matches = signatures.split(' ').some((entry) => {
    const [version, signature] = entry.split(',', 2);
    if (version !== 'v1' || !signature) return false;
    const given = Buffer.from(signature);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return matches ? { ok: true } : { ok: false, reason: 'no webhook-signature entry matches' };
}

export function openaiVideosContentPath(taskId: string): string {
  return `/v1/videos/${encodeURIComponent(taskId)}/content`;
}

export function createOpenaiVideosAdapter(config: ProviderConfig, fetchFn: FetchFn): ProviderAdapter {
  const secret = config.webhook_secret;
  return {
    config,
    callbackHeaders: ['content-type', 'user-agent', 'webhook-id', 'webhook-timestamp', 'webhook-signature'],
    signedCallbacks: Boolean(secret),
    keyedContent: true,
    validateRequest: validateOpenaiVideosRequest,
    buildSubmit: buildOpenaiVideosSubmit,
    parseSubmitResponse: parseOpenaiVideosSubmit,
    parseStatus: parseOpenaiVideosStatus,
    parseCallback: parseOpenaiVideosCallback,
    // Only with a secret is there a signature to check.
    ...(secret ? { verifyCallback: (req: CallbackRequest, now: Date) => verifyStandardWebhook(secret, req, now) } : {}),
    callbackDeliveryId: ({ headers }) => headers['webhook-id'] || null,
    async submit(req, _callbackUrl, signal) {
      const { path, body } = buildOpenaiVideosSubmit(req);
      return parseOpenaiVideosSubmit(await callProvider(config, fetchFn, 'POST', path, body, signal));
    },
    async fetchStatus(taskId, signal) {
      const body = await callProvider(config, fetchFn, 'GET', `/v1/videos/${encodeURIComponent(taskId)}`, undefined, signal);
      return parseOpenaiVideosStatus(body);
    },
    contentPath: openaiVideosContentPath,
  };
}
