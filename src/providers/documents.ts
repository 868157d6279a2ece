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
