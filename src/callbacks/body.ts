import { AppError } from '../errors.js';
import { BodyTooLargeError, readStreamLimited } from '../http/limits.js';

export const MAX_CALLBACK_BYTES = 1024 * 1024;

/** Reads a request body as raw bytes, at most `limit` of them (413 beyond). */
export async function readBodyLimited(req: Request, limit: number): Promise<Uint8Array> {
  try {
    return await readStreamLimited(req.body, limit, req.headers.get('content-length'));
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new AppError('payload_too_large', err.message);
    throw err;
  }
}

/** `application/json` and `application/*+json`; anything else is refused before its body is read. */
export function isJsonContentType(value: string | undefined): boolean {
  if (!value) return true; // some providers send none; the body itself must still be JSON
  const type = value.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export const MAX_JSON_DEPTH = 64;

/** The deepest nesting of arrays and objects in JSON text, found without parsing (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 92 /* \\ */) i++;
      else if (ch === 34 /* " */) inString = false;
    } else if (ch === 34) inString = true;
    else if (ch === 123 || ch === 91) max = Math.max(max, ++depth);
    else if (ch === 125 || ch === 93) depth--;
  }
  return max;
}

/** Parses bytes as a JSON object, or throws an `invalid_request` saying what is wrong. */
export function parseJsonObject(raw: Uint8Array): Record<string, unknown> {
  let text: string;
  let value: unknown;
  try {
    text = utf8.decode(raw);
    value = JSON.parse(text);
  } catch {
    throw new AppError('invalid_request', 'body is not valid UTF-8 JSON');
  }
  // Provider documents are a few levels deep; refusing deep nesting keeps every later walk of the
  // document (and Postgres' jsonb) far from its recursion limits.
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    throw new AppError('invalid_request', `body is nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new AppError('invalid_request', 'body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
