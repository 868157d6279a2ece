import { type DestinationStream, pino, type Logger } from 'pino';
import { isSecretName, REDACTED, redactCallbackPath, redactSecrets, scrubText } from './redact.js';

export type { Logger } from 'pino';

/** Cuts the `params: …` part drizzle adds to a failed query's message. */
export function redactQueryParams(text: string): string {
  return text.replace(/\nparams: [\s\S]*?(?=\n\s+at |$)/, '\nparams: [redacted]');
}

/**
 * Errors as pino writes them, minus query parameters and secrets: a failed insert's parameters are
 * callback bodies, secrets and keys, and must not reach the logs (drizzle puts them in both `params`
 * and the message); a message or stack may quote a callback URL or a bearer credential.
 */
function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
  if (!out || typeof out !== 'object') return out;
  delete out.params;
  for (const [k, v] of Object.entries(out)) {
    if (k === 'cause') continue;
    if (isSecretName(k)) out[k] = REDACTED;
    else if (typeof v === 'string') out[k] = scrubText(k === 'message' || k === 'stack' ? redactQueryParams(v) : v);
    else out[k] = redactSecrets(v);
  }
  if (out.cause && typeof out.cause === 'object') out.cause = serializeError(out.cause);
  return out;
}

/**
 * JSON lines on `destination` (stdout by default). Every logged object goes through
 * `redactSecrets`, at any depth: a secret-named field is written as "[redacted]", and callback-URL
 * tokens and bearer credentials are cut out of strings.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'callback-relay' },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: serializeError },
    formatters: { log: (object: Record<string, unknown>) => redactSecrets(object) as Record<string, unknown> },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** Callback URLs carry a secret token; logs show the route, never the token. */
export function redactPath(path: string): string {
  return path.startsWith('/callbacks/') ? redactCallbackPath(path) : path;
}
