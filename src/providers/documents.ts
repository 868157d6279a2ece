import { normaliseProgress, type Observation } from '../jobs/states.js';
import { MalformedPayloadError } from './types.js';

/** Reading provider documents, which are JSON of no guaranteed shape. */

export function asObject(value: unknown): Record<string, unknown> | null {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

export function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value : undefined;
}

/** The document as an object, or a MalformedPayloadError (answered 400 on a callback). */
export function objectDocument(body: unknown): Record<string, unknown> {
  const doc = asObject(body);
  if (!doc) throw new MalformedPayloadError('expected a JSON object');
  return doc;
}

/**
 * What a status document says in the relay's terms: its `status` (or `fallbackStatus`) read through
 * the kind's `vocabulary`, its progress, and the document itself. Null for a status the relay does
 * not act on; a document with no status at all is malformed. Each adapter adds URLs and errors.
 */
export function observedStatus(
  doc: Record<string, unknown>,
  vocabulary: Record<string, Observation['status']>,
  fallbackStatus?: string,
): Observation | null {
  const raw = doc.status ?? fallbackStatus;
  if (typeof raw !== 'string') throw new MalformedPayloadError('missing "status"');
  const status = vocabulary[raw.toLowerCase()];
  return status ? { status, progress: normaliseProgress(doc.progress), raw: doc } : null;
}
