import type { MiddlewareHandler } from 'hono';
import { jsonDepth, MAX_JSON_DEPTH } from '../callbacks/body.js';
import { LONE_SURROGATE } from '../db/json.js';
import { AppError } from '../errors.js';

/** Why a string cannot be stored (Postgres text and jsonb hold neither), or null. */
export function unstorable(s: string): string | null {
  if (s.includes('\u0000')) return 'contains a NUL character';
  if (LONE_SURROGATE.test(s)) return 'contains an unpaired UTF-16 surrogate';
  return null;
}

function invalid(field: string, message: string): AppError {
  return new AppError('invalid_request', `${field || 'body'}: ${message}`, [{ field, message }]);
}

/** The first string or key in `value` that cannot be stored, as a dotted path and a reason. */
function findUnstorable(value: unknown, path: string): [string, string] | null {
  if (typeof value === 'string') {
    const why = unstorable(value);
    return why ? [path, why] : null;
  }
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = findUnstorable(v, path ? `${path}.${i}` : String(i));
      if (found) return found;
    }
    return null;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const key = path ? `${path}.${k}` : k;
      const why = unstorable(k);
      if (why) return [key, `its name ${why}`];
      const found = findUnstorable(v, key);
      if (found) return found;
    }
  }
  return null;
}

/**
 * For the internal API: refuses (400, naming the field) what no route could store — a NUL or an
 * unpaired surrogate in the path, the query or any string of a JSON body, and JSON nested deeper
 * than the callbacks allow — before a handler or the database meets it. Malformed JSON is left to
 * the route's own validation, which says so.
 */
export const refuseUnstorableInput: MiddlewareHandler = async (c, next) => {
  const url = new URL(c.req.url);
  for (const segment of url.pathname.split('/')) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw invalid('path', 'is not valid percent-encoded UTF-8');
    }
    const why = unstorable(decoded);
    if (why) throw invalid('path', why);
  }
  for (const [name, value] of url.searchParams) {
    const why = unstorable(name) ?? unstorable(value);
    if (why) throw invalid(name, why);
  }
  const type = c.req.header('content-type') ?? '';
  if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && /json/i.test(type)) {
    const text = await c.req.text();
    if (text) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return next();
      }
      if (jsonDepth(text) > MAX_JSON_DEPTH) throw invalid('', `is nested deeper than ${MAX_JSON_DEPTH} levels`);
      const found = findUnstorable(value, '');
      if (found) throw invalid(found[0], found[1]);
    }
  }
  return next();
};
