import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { deliveryBody } from '../../src/fanout/payload.js';
import { type AttemptResult, decideAttempt, parseRetryAfter } from '../../src/fanout/policy.js';
import { generateSecret, notifyUrlSecret, secretProblem, signPayload } from '../../src/fanout/signing.js';

const answer = (statusCode: number | null, over: Partial<AttemptResult> = {}): AttemptResult => ({
  statusCode,
  latencyMs: 5,
  error: statusCode === null ? 'ECONNREFUSED' : null,
  excerpt: null,
  retryAfterMs: null,
  ...over,
});
const schedule = [0, 5, 300];
const half = () => 0.5; // no jitter

describe('delivery policy', () => {
  it('a 2xx is delivered; anything else fails, a 3xx included', () => {
    for (const code of [200, 201, 204, 299]) expect(decideAttempt(answer(code), 1, schedule, { hasSubscription: true })).toEqual({ kind: 'delivered' });
    for (const code of [null, 199, 301, 302, 307, 400, 404, 500, 502]) {
      expect(decideAttempt(answer(code), 1, schedule, { hasSubscription: true }, half).kind).toBe('retry');
    }
  });

  it('retry_schedule_s[n] is the wait before attempt n+1, with ±20 % jitter; its length is the number of attempts', () => {
    expect(decideAttempt(answer(500), 1, schedule, { hasSubscription: true }, half)).toEqual({ kind: 'retry', delayMs: 5000, gone: false });
    expect(decideAttempt(answer(500), 2, schedule, { hasSubscription: true }, half)).toEqual({ kind: 'retry', delayMs: 300_000, gone: false });
    expect(decideAttempt(answer(500), 3, schedule, { hasSubscription: true }, half)).toEqual({ kind: 'dead', gone: false });
    const low = decideAttempt(answer(500), 1, schedule, { hasSubscription: true }, () => 0);
    const high = decideAttempt(answer(500), 1, schedule, { hasSubscription: true }, () => 1);
    expect(low).toMatchObject({ delayMs: 4000 });
    expect(high).toMatchObject({ delayMs: 6000 });
  });

  it('Retry-After counts on 429 and 503 only, clamped to 1 s – 1 h', () => {
    const retry = (code: number, ms: number) => decideAttempt(answer(code, { retryAfterMs: ms }), 1, schedule, { hasSubscription: true }, half);
    expect(retry(429, 120_000)).toMatchObject({ delayMs: 120_000 });
    expect(retry(503, 0)).toMatchObject({ delayMs: 1000 });
    expect(retry(429, 86_400_000)).toMatchObject({ delayMs: 3_600_000 });
    expect(retry(500, 120_000)).toMatchObject({ delayMs: 5000 });
  });

  it('410 marks the subscription gone; for a bare notify_url it ends the delivery', () => {
    expect(decideAttempt(answer(410), 1, schedule, { hasSubscription: true }, half)).toMatchObject({ kind: 'retry', gone: true });
    expect(decideAttempt(answer(410), 1, schedule, { hasSubscription: false }, half)).toEqual({ kind: 'dead', gone: true });
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('30')).toBe(30_000);
    expect(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(58_000);
    expect(parseRetryAfter('soon')).toBeNull();
    expect(parseRetryAfter(undefined)).toBeNull();
    expect(parseRetryAfter('-5')).toBeNull();
  });
});

describe('signing', () => {
  const body = deliveryBody({
    eventId: 'evt_1',
    type: 'job.succeeded',
    sequence: 3,
    data: { id: 'job_1', status: 'succeeded' },
    createdAt: new Date('2026-11-22T10:00:00.123Z'),
  });

  it('the body is the SPEC shape', () => {
    expect(JSON.parse(body)).toEqual({
      type: 'job.succeeded',
      timestamp: '2026-11-22T10:00:00.123Z',
      data: { event_id: 'evt_1', sequence: 3, job: { id: 'job_1', status: 'succeeded' } },
    });
  });

  it('signatures verify with the standardwebhooks package, each of several secrets', () => {
    const a = generateSecret();
    const b = generateSecret();
    const ts = Math.floor(Date.now() / 1000);
    const headers = { 'webhook-id': 'evt_1', 'webhook-timestamp': String(ts), 'webhook-signature': signPayload([a, b], 'evt_1', ts, body) };
    expect(headers['webhook-signature']).toMatch(/^v1,\S+ v1,\S+$/);
    expect(new Webhook(a).verify(body, headers)).toBeTruthy();
    expect(new Webhook(b).verify(body, headers)).toBeTruthy();
    expect(() => new Webhook(generateSecret()).verify(body, headers)).toThrow();
    expect(() => new Webhook(a).verify(`${body} `, headers)).toThrow();
  });

  it('generated secrets are whsec_ + base64 of 32 bytes; bad ones are refused with a reason', () => {
    const s = generateSecret();
    expect(secretProblem(s)).toBeNull();
    expect(Buffer.from(s.slice(6), 'base64')).toHaveLength(32);
    expect(secretProblem('abc')).toMatch(/whsec_/);
    expect(secretProblem('whsec_abc$')).toMatch(/base64/);
    expect(secretProblem(`whsec_${Buffer.alloc(16).toString('base64')}`)).toMatch(/24–64 bytes/);
    expect(secretProblem(`whsec_${Buffer.alloc(65).toString('base64')}`)).toMatch(/24–64 bytes/);
  });

  it('the notify_url secret is stable for a server secret and differs between them', () => {
    expect(notifyUrlSecret('one-secret-0123456789')).toBe(notifyUrlSecret('one-secret-0123456789'));
    expect(notifyUrlSecret('one-secret-0123456789')).not.toBe(notifyUrlSecret('two-secret-0123456789'));
    expect(secretProblem(notifyUrlSecret('x'.repeat(20)))).toBeNull();
  });
});
