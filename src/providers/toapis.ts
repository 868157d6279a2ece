import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ProviderConfig } from '../config.js';
import type { JobRequest, RuleViolation } from '../jobs/request.js';
import { normaliseProgress, type Observation } from '../jobs/states.js';
import { asObject, objectDocument, observedStatus } from './documents.js';
import { callProvider, type FetchFn } from './http.js';
import { compact, Rules } from './rules.js';
import {
  type CallbackRequest,
  MalformedPayloadError,
  type ParsedCallback,
  type ProviderAdapter,
  ProviderCallError,
  type SignatureCheck,
  type SubmitRequest,
  type SubmitResult,
} from './types.js';

/**
 * toapis (seeds 000, 003). Status: `GET /v1/videos/generations/{id}` → `{id, status, progress, result,
 * error, expires_at}` with `submitted | queued → in_progress → completed | failed`. Callbacks are signed
 * `{id, type, created_at, data:{task_id, status, …}}` envelopes with `X-ToAPIs-Webhook-*` headers.
 */

const statusMap: Record<string, Observation['status']> = {
  submitted: 'submitted',
  queued: 'submitted',
  in_progress: 'processing',
  completed: 'succeeded',
  failed: 'failed',
};

const eventStatus: Record<string, string> = { 'generation.completed': 'completed', 'generation.failed': 'failed' };

/** How far a callback's timestamp may be from our clock, either way, before it counts as a replay. */
const SIGNATURE_TOLERANCE_S = 5 * 60;
const SIGNATURE_BYTES = 32;

/** The first element when the older answers wrap a document in a one-item `data` array. */
function firstOrSelf(value: unknown): Record<string, unknown> | null {
  return asObject(Array.isArray(value) ? value[0] : value);
}

/** The task document, accepting it bare or inside the older `{code, data}` envelope. */
function taskDocument(body: unknown): Record<string, unknown> {
  const doc = objectDocument(body);
  const data = firstOrSelf(doc.data);
  if (data && doc.status === undefined && data.status !== undefined) return data;
  return doc;
}

/** `result` as `{type: "video", data: [{url} | "url"]}`, or a bare URL. */
function resultUrls(result: unknown): string[] {
  if (typeof result === 'string') return result ? [result] : [];
  const items = asObject(result)?.data;
  if (!Array.isArray(items)) return [];
  return items
    .map((item) => (typeof item === 'string' ? item : asObject(item)?.url))
    .filter((u): u is string => typeof u === 'string' && u !== '');
}

function readError(error: unknown): { code: string; message: string } {
  if (typeof error === 'string' && error) return { code: 'generation_failed', message: error };
  const err = asObject(error);
  return {
    code: typeof err?.code === 'string' && err.code ? err.code : 'generation_failed',
    message: typeof err?.message === 'string' && err.message ? err.message : 'the provider reported the task failed',
  };
}

function readObservation(doc: Record<string, unknown>, fallbackStatus?: string): Observation | null {
  const obs = observedStatus(doc, statusMap, fallbackStatus);
  if (!obs) return null;
  const { status } = obs;
    if (status === 'succeeded') obs.videoUrls = resultUrls(doc.result);
  if (status === 'failed') obs.error = { ...readError(doc.error), source: 'provider' };
  return obs;
}

export function parseToapisStatus(body: unknown): Observation | null {
  return readObservation(taskDocument(body));
}

const ASPECTS = ['16:9', '9:16'] as const;
const DURATIONS = [6, 10] as const;
const RESOLUTIONS = ['720P'] as const;
/** Body fields the relay sets from validated request fields; `provider_options` may not override them. */
const OWN_FIELDS = ['model', 'prompt', 'aspect_ratio', 'duration', 'resolution', 'callback_url'];

/** Seeds 000/003's rules for `gemini_omni`, the only model they document. */
export function validateToapisRequest(req: JobRequest): RuleViolation[] {
  const r = new Rules();
  const model = req.model ?? 'gemini_omni';
  r.oneOf('model', model, ['gemini_omni'], 'toapis.model');
  r.unsupported(req, ['images', 'reference_images', 'negative_prompt', 'seed', 'audio'], 'toapis.unsupported_field');
  for (const key of Object.keys(req.provider_options ?? {})) {
    if (OWN_FIELDS.includes(key)) {
      r.fail(`provider_options.${key}`, 'toapis.provider_options', `provider_options.${key} cannot override the request's own fields; set it at the top level`);
    }
  }
  if (model !== 'gemini_omni') return r.violations;
  r.required('prompt', req.prompt, 'toapis.gemini_omni.prompt');
  r.oneOf('aspect_ratio', req.aspect_ratio, ASPECTS, 'toapis.gemini_omni.aspect_ratio');
  r.oneOf('duration', req.duration, DURATIONS, 'toapis.gemini_omni.duration');
  r.oneOf('resolution', req.resolution, RESOLUTIONS, 'toapis.gemini_omni.resolution');
  return r.violations;
}

export function buildToapisSubmit(req: JobRequest, callbackUrl: string | null): SubmitRequest {
  return {
    path: '/v1/videos/generations',
    body: compact({
      // Native extras sit at the top level; validation keeps them from replacing the fields below.
      ...req.provider_options,
      model: req.model ?? 'gemini_omni',
      prompt: req.prompt,
      // The documented defaults, sent explicitly so the job's outcome does not depend on the provider's.
      aspect_ratio: req.aspect_ratio ?? '16:9',
      duration: req.duration ?? 6,
      resolution: req.resolution ?? '720P',
      callback_url: callbackUrl ?? undefined,
    }),
  };
}

/**
 * `{id, object, model, status: "queued", progress, created_at}`, or the older
 * `{code, data: [{task_id, status: "submitted"}]}`, where a `code` other than 200 is the provider refusing.
 */
export function parseToapisSubmit(body: unknown): SubmitResult {
  const doc = asObject(body);
  if (!doc) throw new MalformedPayloadError('submit answer is not a JSON object');
  if (typeof doc.code === 'number' && doc.code !== 200) {
    const message = doc.message ?? doc.msg;
    throw new ProviderCallError({
      retryable: doc.code === 429 || doc.code >= 500,
      status: doc.code,
      code: 'provider_error',
      message: typeof message === 'string' ? message : `provider answered code ${doc.code}`,
    });
  }
  const data = firstOrSelf(doc.data);
  const taskId = doc.id ?? data?.task_id ?? data?.id;
  if (typeof taskId !== 'string' || !taskId) throw new MalformedPayloadError('submit answer names no task id');
  return { taskId, observation: { status: 'submitted', progress: normaliseProgress(doc.progress), raw: doc } };
}

/** `data` carries the task; its status wins over the event `type`, which stands in when it is absent. */
export function parseToapisCallback({ body }: CallbackRequest): ParsedCallback {
  const data = asObject(body.data);
  if (!data) throw new MalformedPayloadError('callback has no "data" object');
  const taskId = data.task_id ?? data.id;
  // An event type the relay does not know maps to no status: stored and ignored, not refused.
  const fallback = typeof body.type === 'string' ? (eventStatus[body.type] ?? body.type) : undefined;
  return {
    taskId: typeof taskId === 'string' && taskId ? taskId : null,
    observation: readObservation(data, fallback),
  };
}

/**
 * `X-ToAPIs-Webhook-Signature: v1=<hex>[,v1=<hex>]` (one per secret during rotation): lowercase hex
 * HMAC-SHA256 of `id.timestamp.rawBody`, the timestamp within five minutes of `now`.
 */
export function verifyToapisSignature(secret: string, { headers, raw }: CallbackRequest, now: Date): SignatureCheck {
  const id = headers['x-toapis-webhook-id'];
  const timestamp = headers['x-toapis-webhook-timestamp'];
  const signature = headers['x-toapis-webhook-signature'];
  if (!id || !timestamp || !signature) return { ok: false, reason: 'missing X-ToAPIs-Webhook-Id, -Timestamp or -Signature header' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'X-ToAPIs-Webhook-Timestamp is not unix seconds' };
  const age = now.getTime() / 1000 - Number(timestamp);
  if (age > SIGNATURE_TOLERANCE_S) return { ok: false, reason: 'X-ToAPIs-Webhook-Timestamp is more than 5 minutes old' };
  if (age < -SIGNATURE_TOLERANCE_S) return { ok: false, reason: 'X-ToAPIs-Webhook-Timestamp is more than 5 minutes in the future' };

  const candidates = signature
    .split(',')
    .map((part) => /^v1=([0-9a-f]+)$/i.exec(part.trim())?.[1])
    .filter((hex): hex is string => hex !== undefined && hex.length === SIGNATURE_BYTES * 2)
    .map((hex) => Buffer.from(hex, 'hex'));
  if (candidates.length === 0) return { ok: false, reason: 'X-ToAPIs-Webhook-Signature has no well-formed v1 signature' };
  const expected = createHmac('sha256', secret).update(`${id}.${timestamp}.`).update(raw).digest();
  return candidates.some((c) => timingSafeEqual(c, expected)) ? { ok: true } : { ok: false, reason: 'signature does not match' };
}

export function createToapisAdapter(config: ProviderConfig, fetchFn: FetchFn): ProviderAdapter {
  return {
    config,
    callbackHeaders: ['content-type', 'user-agent', 'x-toapis-webhook-id', 'x-toapis-webhook-timestamp', 'x-toapis-webhook-signature'],
    // Without a secret the callbacks cannot be checked, so they are treated as unsigned.
    signedCallbacks: Boolean(config.webhook_secret),
    keyedContent: false,
    validateRequest: validateToapisRequest,
    buildSubmit: buildToapisSubmit,
    parseSubmitResponse: parseToapisSubmit,
    parseStatus: parseToapisStatus,
    parseCallback: parseToapisCallback,
    verifyCallback(req, now) {
      if (!config.webhook_secret) return { ok: false, reason: 'no webhook_secret is configured for this provider' };
      return verifyToapisSignature(config.webhook_secret, req, now);
    },
    callbackDeliveryId({ headers, body }) {
      const id = headers['x-toapis-webhook-id'] || body.id;
      return typeof id === 'string' && id ? id : null;
    },
    async submit(req, callbackUrl, signal) {
      const { path, body } = buildToapisSubmit(req, callbackUrl);
      return parseToapisSubmit(await callProvider(config, fetchFn, 'POST', path, body, signal));
    },
    async fetchStatus(taskId, signal) {
      const body = await callProvider(config, fetchFn, 'GET', `/v1/videos/generations/${encodeURIComponent(taskId)}`, undefined, signal);
      return parseToapisStatus(body);
    },
  };
}
