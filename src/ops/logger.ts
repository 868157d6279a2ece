import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Cuts the `params: …` part drizzle adds to a failed query's message. */
export function redactQueryParams(text: string): string {
  return text.replace(/\nparams: [\s\S]*?(?=\n\s+at |$)/, '\nparams: [redacted]');
}

/**
 * Errors as pino writes them, minus query parameters: a failed insert's parameters are callback
 * bodies, secrets and keys, and must not reach the logs (drizzle puts them in both `params` and the message).
 */
function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
  if (!out || typeof out !== 'object') return out;
  delete out.params;
  for (const field of ['message', 'stack'] as const) {
    const v = out[field];
    if (typeof v === 'string') out[field] = redactQueryParams(v);
  }
  if (out.cause && typeof out.cause === 'object') out.cause = serializeError(out.cause);
  return out;
}

/** JSON lines on stdout; secrets that might ride along in logged objects are redacted. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'callback-relay' },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: serializeError },
    redact: {
      paths: [
        'authorization',
        '*.authorization',
        'headers.authorization',
        'api_key',
        '*.api_key',
        'secret',
        '*.secret',
        'key',
        'token',
      ],
      censor: '[redacted]',
    },
  });
}

/** Callback URLs carry a secret token as their last segment; logs show the route, never the token. */
export function redactPath(path: string): string {
  return path.startsWith('/callbacks/') ? path.replace(/\/[^/]*$/, '/[token]') : path;
}
