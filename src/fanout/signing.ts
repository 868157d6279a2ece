/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): secrets are `whsec_` + base64 of
 * random bytes, and a signature is `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` keyed with the
 * decoded bytes. Pure; the delivery worker and the tests' verifier share nothing else.
 */
import { createHmac, randomBytes } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
const NEW_SECRET_BYTES = 32;

export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(NEW_SECRET_BYTES).toString('base64');
}

/** Why a caller-supplied secret is refused, or null when it is a usable one. */
export function secretProblem(secret: string): string | null {
  if (!secret.startsWith(SECRET_PREFIX)) return `must start with "${SECRET_PREFIX}"`;
  const b64 = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return `must be "${SECRET_PREFIX}" followed by standard base64`;
  const bytes = Buffer.from(b64, 'base64').length;
  if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    return `must hold ${MIN_SECRET_BYTES}–${MAX_SECRET_BYTES} bytes (it holds ${bytes})`;
  }
  return null;
}

function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
}

/** One `v1,<base64>` signature of `id.timestamp.body`. */
export function signature(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secretKey(secret)).update(`${id}.${timestamp}.`).update(body).digest('base64');
  return `v1,${mac}`;
}

/**
 * The `webhook-signature` header: one signature per secret, space-separated (the current secret
 * first, then a rotated-out one still within its grace period), so a receiver holding either verifies.
 */
export function signPayload(secrets: readonly string[], id: string, timestamp: number, body: string): string {
  return secrets.map((s) => signature(s, id, timestamp, body)).join(' ');
}

/**
 * The secret `notify_url` deliveries are signed with: one per relay, derived from the server secret
 * so every replica signs alike and nothing more needs storing.
 */
export function notifyUrlSecret(serverSecret: string): string {
  const bytes = createHmac('sha256', serverSecret).update('callback-relay notify_url signing v1').digest();
  return SECRET_PREFIX + bytes.toString('base64');
}
