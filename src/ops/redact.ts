/**
 * What counts as a secret, for the logs and for stored callback headers alike: a field or header
 * whose name mentions authorization, a cookie, a token, a secret, a password, a credential or a
 * key. Over-matching (`idempotency-key`) costs an audit detail; under-matching leaks a credential.
 * Signature headers (`webhook-signature`) are kept: a signature proves a body, it grants nothing.
 */
const SECRET_NAME = /authorization|cookie|token|secret|passw|credential|key/i;

export const REDACTED = '[redacted]';

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

const JOB_ID = /^job_[0-9a-z]{26}$/;

/**
 * A callback path as it may be shown: the provider, a relay job id when there is one, and
 * `[token]` for everything else. Not just the last segment: `/callbacks/p/job_…/TOKEN/extra` (a
 * 404) still carries the token.
 */
export function redactCallbackPath(path: string): string {
  const [, , provider, ...rest] = path.split('/');
  if (!rest.length) return path;
  const jobId = rest.length >= 2 && JOB_ID.test(rest[0]!) ? `/${rest[0]}` : '';
  return `/callbacks/${provider}${jobId}/[token]`;
}

const CALLBACK_PATH = /\/callbacks\/[^\s"'?#]*/g;
const BEARER = /\b(Bearer\s+)[^\s"',;]+/gi;

/** Removes bearer credentials and callback-URL tokens from free text (error messages, stacks). */
export function scrubText(text: string): string {
  if (!text.includes('/callbacks/') && !/bearer/i.test(text)) return text;
  return text.replace(CALLBACK_PATH, redactCallbackPath).replace(BEARER, '$1[redacted]');
}

const MAX_DEPTH = 8;

/**
 * A copy of `value` with secret-named fields replaced and strings scrubbed; the same object when
 * nothing needed changing (the common case: a log line is copied only if it carries a secret).
 * Errors are left to the logger's error serializer, which scrubs them itself.
 */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (!value || typeof value !== 'object' || value instanceof Error || depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    value.forEach((item, i) => {
      const r = redactSecrets(item, depth + 1);
      if (r !== item) (copy ??= [...value])[i] = r;
    });
    return copy ?? value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value; // Dates, Buffers, class instances
  let copy: Record<string, unknown> | null = null;
  for (const [k, v] of Object.entries(value)) {
    const r = isSecretName(k) && v !== null && v !== undefined ? REDACTED : redactSecrets(v, depth + 1);
    if (r !== v) (copy ??= { ...(value as Record<string, unknown>) })[k] = r;
  }
  return copy ?? value;
}
