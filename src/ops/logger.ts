import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** JSON lines on stdout; secrets that might ride along in logged objects are redacted. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'callback-relay' },
    timestamp: pino.stdTimeFunctions.isoTime,
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
