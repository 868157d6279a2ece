import type { ProviderConfig } from '../config.js';
import type { JobRequest, RuleViolation } from '../jobs/request.js';
import type { Observation } from '../jobs/states.js';
import { asObject, objectDocument, observedStatus } from './documents.js';
import { callProvider, type FetchFn } from './http.js';
import { compact, optionString, Rules } from './rules.js';
import {
  MalformedPayloadError,
  type ParsedCallback,
  type ProviderAdapter,
  ProviderCallError,
  type SubmitRequest,
  type SubmitResult,
} from './types.js';

/**
 * aivideoapi (seed 001). Status: `GET /v1/tasks/{id}` → `{id, status, progress, output:{urls}, error}`
 * with `pending → processing → completed | failed`. Callbacks are unsigned POSTs of the same document
 * with `X-Event`, `X-Task-Id` and `X-Timestamp` headers.
 */

const statusMap: Record<string, Observation['status']> = {
  pending: 'submitted',
  processing: 'processing',
  completed: 'succeeded',
  failed: 'failed',
};

const eventStatus: Record<string, string> = { 'task.completed': 'completed', 'task.failed': 'failed' };

/** The task document, accepting it bare (as the seed shows) or inside the `{code, msg, data}` envelope the submit answer uses. */
function taskDocument(body: unknown): Record<string, unknown> {
  const doc = objectDocument(body);
  const data = asObject(doc.data);
  if (data && doc.status === undefined && (data.status !== undefined || data.id !== undefined)) return data;
  return doc;
}

function readObservation(doc: Record<string, unknown>, fallbackStatus?: string): Observation | null {
  const obs = observedStatus(doc, statusMap, fallbackStatus);
  if (!obs) return null;
  const { status } = obs;
    if (status === 'succeeded') {
    const urls = asObject(doc.output)?.urls;
    obs.videoUrls = Array.isArray(urls) ? urls.filter((u): u is string => typeof u === 'string') : [];
  }
  if (status === 'failed') {
    const err = asObject(doc.error);
    obs.error = {
      code: typeof err?.code === 'string' && err.code ? err.code : 'generation_failed',
      message: typeof err?.message === 'string' && err.message ? err.message : 'the provider reported the task failed',
      source: 'provider',
    };
  }
  return obs;
}

export function parseAivideoapiStatus(body: unknown): Observation | null {
  return readObservation(taskDocument(body));
}

const MODES = ['fast', 'quality', 'lite'] as const;
const RESOLUTIONS = ['720p', '1080p', '4k'] as const;
const ASPECTS = ['16:9', '9:16', 'Auto'] as const;
const GENERATION_TYPES = ['TEXT_2_VIDEO', 'FIRST_AND_LAST_FRAMES_2_VIDEO', 'REFERENCE_2_VIDEO'] as const;

/** The generation type asked for, or the one the provider would infer from the images given. */
function generationType(req: JobRequest): string {
  const explicit = req.provider_options?.generation_type;
  if (typeof explicit === 'string') return explicit;
  if (req.reference_images?.length) return 'REFERENCE_2_VIDEO';
  if (req.images?.length) return 'FIRST_AND_LAST_FRAMES_2_VIDEO';
  return 'TEXT_2_VIDEO';
}

/** Seed 001's rules for `veo-3` and `veo-3-extend`. */
export function validateAivideoapiRequest(req: JobRequest): RuleViolation[] {
  const r = new Rules();
  const model = req.model ?? 'veo-3';
  r.oneOf('model', model, ['veo-3', 'veo-3-extend'], 'aivideoapi.model');
  r.required('prompt', req.prompt, 'aivideoapi.prompt');
  r.unsupported(req, ['duration', 'negative_prompt', 'audio'], 'aivideoapi.unsupported_field');
  const mode = optionString(r, req, 'mode', 'aivideoapi.mode') ?? 'fast';
  r.oneOf('provider_options.mode', mode, MODES, 'aivideoapi.mode');
  r.oneOf('resolution', req.resolution, RESOLUTIONS, 'aivideoapi.resolution');
  r.oneOf('aspect_ratio', req.aspect_ratio, ASPECTS, 'aivideoapi.aspect_ratio');
  r.range('seed', req.seed, 10000, 99999, 'aivideoapi.seed');

  if (model === 'veo-3-extend') {
    r.required('provider_options.extend_task_id', req.provider_options?.extend_task_id, 'aivideoapi.veo-3-extend.extend_task_id', 'for veo-3-extend');
    return r.violations;
  }
  const type = generationType(req);
  r.oneOf('provider_options.generation_type', type, GENERATION_TYPES, 'aivideoapi.generation_type');
  if (req.images?.length && req.reference_images?.length) {
    r.fail('reference_images', 'aivideoapi.images_exclusive', 'images (first/last frames) and reference_images cannot be used together');
  }
  if (type === 'FIRST_AND_LAST_FRAMES_2_VIDEO') {
    r.count('images', req.images ?? [], 1, 2, 'aivideoapi.first_and_last_frames.images', 'for first-and-last-frames');
  }
  if (type === 'REFERENCE_2_VIDEO') {
    r.count('reference_images', req.reference_images ?? req.images ?? [], 1, 3, 'aivideoapi.reference.images', 'for reference-to-video');
    if (mode !== 'fast') r.fail('provider_options.mode', 'aivideoapi.reference.mode', 'reference-to-video works only with mode "fast"');
    if (req.aspect_ratio === 'Auto') {
      r.fail('aspect_ratio', 'aivideoapi.reference.aspect_ratio', 'reference-to-video needs aspect_ratio 16:9 or 9:16');
    }
  }
  return r.violations;
}

export function buildAivideoapiSubmit(req: JobRequest, callbackUrl: string | null): SubmitRequest {
  const model = req.model ?? 'veo-3';
  const images = req.reference_images?.length ? req.reference_images : req.images;
  const input = compact({
    prompt: req.prompt,
    resolution: req.resolution,
    aspect_ratio: req.aspect_ratio,
    image_urls: images?.length ? images : undefined,
    seeds: req.seed,
    ...(model === 'veo-3' && images?.length ? { generation_type: generationType(req) } : {}),
    // Native fields (mode, generation_type, enable_translation, watermark, extend_task_id) live in `input`.
    ...req.provider_options,
  });
  return {
    path: '/v1/videos/generations',
    body: compact({ model, callback_url: callbackUrl ?? undefined, input }),
  };
}

/** `{code: 200, msg, data: {taskId}}`; a 2xx whose `code` is not 200 is the provider refusing. */
export function parseAivideoapiSubmit(body: unknown): SubmitResult {
  const doc = asObject(body);
  if (!doc) throw new MalformedPayloadError('submit answer is not a JSON object');
  if (typeof doc.code === 'number' && doc.code !== 200) {
    throw new ProviderCallError({
      retryable: doc.code === 429 || doc.code >= 500,
      status: doc.code,
      code: 'provider_error',
      message: typeof doc.msg === 'string' ? doc.msg : `provider answered code ${doc.code}`,
    });
  }
  const data = asObject(doc.data);
  const taskId = data?.taskId ?? data?.task_id ?? doc.taskId ?? doc.id;
  if (typeof taskId !== 'string' || !taskId) throw new MalformedPayloadError('submit answer names no taskId');
  return { taskId, observation: { status: 'submitted', raw: doc } };
}

export function createAivideoapiAdapter(config: ProviderConfig, fetchFn: FetchFn): ProviderAdapter {
  return {
    config,
    callbackHeaders: ['content-type', 'user-agent', 'x-event', 'x-task-id', 'x-timestamp'],
    signedCallbacks: false,
    keyedContent: false,
    validateRequest: validateAivideoapiRequest,
    buildSubmit: buildAivideoapiSubmit,
    parseSubmitResponse: parseAivideoapiSubmit,
    parseStatus: parseAivideoapiStatus,
    parseCallback({ headers, body }): ParsedCallback {
      const doc = taskDocument(body);
      const bodyId = typeof doc.id === 'string' && doc.id ? doc.id : null;
      const headerId = headers['x-task-id'] || null;
      if (bodyId && headerId && bodyId !== headerId) {
        throw new MalformedPayloadError('X-Task-Id and the body "id" name different tasks');
      }
      const event = headers['x-event'];
      return {
        taskId: bodyId ?? headerId,
        observation: readObservation(doc, event ? eventStatus[event] : undefined),
      };
    },
    async submit(req, callbackUrl, signal) {
      const { path, body } = buildAivideoapiSubmit(req, callbackUrl);
      return parseAivideoapiSubmit(await callProvider(config, fetchFn, 'POST', path, body, signal));
    },
    async fetchStatus(taskId, signal) {
      const body = await callProvider(config, fetchFn, 'GET', `/v1/tasks/${encodeURIComponent(taskId)}`, undefined, signal);
      return parseAivideoapiStatus(body);
    },
  };
}
