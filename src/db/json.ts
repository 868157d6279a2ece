/**
 * Postgres `jsonb` refuses the NUL character (`\u0000`) and unpaired UTF-16 surrogates anywhere in
 * a string. Provider documents are stored as jsonb, so every string and key is made storable before
 * it is written, rather than letting one odd character turn a valid callback into a failed insert.
 */
export function jsonbSafe<T>(value: T): T {
  return scrub(value) as T;
}

/** A UTF-16 half of a pair with no other half: JavaScript allows it, UTF-8 (and so Postgres) cannot hold it. */
export const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** A string Postgres can store: NULs dropped, unpaired surrogates replaced by U+FFFD. */
export function storableText(value: string): string {
  const noNul = value.includes('\u0000') ? value.replaceAll('\u0000', '') : value;
  return LONE_SURROGATE.test(noNul) ? noNul.replace(LONE_SURROGATES, '\ufffd') : noNul;
}

function scrub(value: unknown): unknown {
  if (typeof value === 'string') return storableText(value);
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
  // JSON.stringify writes a NUL as \u0000 and an unpaired surrogate as \udXXX; without either there is nothing to fix.
  return json.includes('\\u0000') || /\\ud[89a-f]/i.test(json) ? JSON.stringify(jsonbSafe(value)) : json;
}
