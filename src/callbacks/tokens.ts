import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

function derive(secret: string, purpose: string): string {
  return createHmac('sha256', secret).update(purpose).digest('base64url').slice(0, 32);
}

/** The token in a job's own callback URL: only the relay, holding the server secret, can make it. */
export function jobCallbackToken(secret: string, provider: string, jobId: string): string {
  return derive(secret, `job-callback\u0000${provider}\u0000${jobId}`);
}

/** The token in a provider's shared callback URL, for jobs submitted elsewhere and tracked by task id. */
export function providerCallbackToken(secret: string, provider: string): string {
  return derive(secret, `provider-callback\u0000${provider}`);
}

/** Compares two secrets in time that does not depend on where they differ, nor on their lengths. */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/**
 * Whether a callback URL's token is the one expected. Tokens all have one public length, so only a
 * same-length token is compared, byte by byte in constant time (no hashing of both sides first, as
 * `secretsEqual` does for secrets whose length could say something).
 */
export function tokenMatches(given: string, expected: string): boolean {
  if (given.length !== expected.length) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function jobCallbackUrl(base: string, secret: string, provider: string, jobId: string): string {
  return `${base}/callbacks/${encodeURIComponent(provider)}/${encodeURIComponent(jobId)}/${jobCallbackToken(secret, provider, jobId)}`;
}

export function providerCallbackUrl(base: string, secret: string, provider: string): string {
  return `${base}/callbacks/${encodeURIComponent(provider)}/${providerCallbackToken(secret, provider)}`;
}
