/**
 * Postgres `jsonb` refuses the NUL character (`\u0000`) anywhere in a string. Provider documents
 * are stored as jsonb, so NULs are dropped from every string and key before they are written,
 * rather than letting one odd byte turn a valid callback into a failed insert.
 */
export function jsonbSafe<T>(value: T): T {
  return scrub(value) as T;
}

function scrub(value: unknown): unknown {
  if (typeof value === 'string') return value.includes('\u0000') ? value.replaceAll('\u0000', '') : value;
  if (Array.isArray(value)) return value.map(scrub);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[scrub(k) as string] = scrub(v);
    return out;
  }
  return value;
}

/** A value as one `::jsonb` query parameter (for `jsonb_to_recordset` batches), NULs dropped so it always parses. */
export function jsonParam(value: unknown): string {
  const json = JSON.stringify(value);
  // JSON.stringify writes a NUL as the escape \u0000; without one there is nothing to drop.
  return json.includes('\\u0000') ? JSON.stringify(jsonbSafe(value)) : json;
}
