import type { ProviderConfig } from '../config.js';
import { normaliseProgress, type Observation } from '../jobs/states.js';
import { callProvider, type FetchFn } from './http.js';
import { MalformedPayloadError, type ParsedCallback, type ProviderAdapter } from './types.js';

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

function asObject(value: unknown): Record<string, unknown> | null {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** The task document, accepting it bare (as the seed shows) or inside the `{code, msg, data}` envelope the submit answer uses. */
function taskDocument(body: unknown): Record<string, unknown> {
  const doc = asObject(body);
  if (!doc) throw new MalformedPayloadError('expected a JSON object');
  const data = asObject(doc.data);
  if (data && doc.status === undefined && (data.status !== undefined || data.id !== undefined)) return data;
  return doc;
}

function readObservation(doc: Record<string, unknown>, fallbackStatus?: string): Observation | null {
  const raw = doc.status ?? fallbackStatus;
  if (typeof raw !== 'string') throw new MalformedPayloadError('missing "status"');
  const status = statusMap[raw.toLowerCase()];
  if (!status) return null;
  const obs: Observation = { status, progress: normaliseProgress(doc.progress), raw: doc };
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

export function createAivideoapiAdapter(config: ProviderConfig, fetchFn: FetchFn): ProviderAdapter {
  return {
    config,
    callbackHeaders: ['content-type', 'user-agent', 'x-event', 'x-task-id', 'x-timestamp'],
    signedCallbacks: false,
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
    async fetchStatus(taskId, signal) {
      const body = await callProvider(config, fetchFn, 'GET', `/v1/tasks/${encodeURIComponent(taskId)}`, undefined, signal);
      return parseAivideoapiStatus(body);
    },
  };
}
