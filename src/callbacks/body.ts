import { AppError } from '../errors.js';

export const MAX_CALLBACK_BYTES = 1024 * 1024;

/**
 * Reads a request body as raw bytes, refusing more than `limit` bytes without reading past it.
 * `Content-Length` is trusted only to refuse early; the count of bytes actually read decides.
 */
export async function readBodyLimited(req: Request, limit: number): Promise<Uint8Array> {
  const declared = req.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    throw new AppError('payload_too_large', `body is larger than ${limit} bytes`);
  }
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new AppError('payload_too_large', `body is larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
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
