import { describe, expect, it } from 'vitest';
import { isJsonContentType, jsonDepth, parseJsonObject, readBodyLimited } from '../../src/callbacks/body.js';
import { jobCallbackToken, providerCallbackToken, secretsEqual, tokenMatches } from '../../src/callbacks/tokens.js';
import { AppError } from '../../src/errors.js';

describe('callback input', () => {
  it('job tokens are bound to the secret, the provider and the job', () => {
    const t = jobCallbackToken('s1', 'veo', 'job_1');
    expect(t).toHaveLength(32);
    expect(jobCallbackToken('s1', 'veo', 'job_1')).toBe(t);
    expect(jobCallbackToken('s2', 'veo', 'job_1')).not.toBe(t);
    expect(jobCallbackToken('s1', 'other', 'job_1')).not.toBe(t);
    expect(jobCallbackToken('s1', 'veo', 'job_2')).not.toBe(t);
    expect(providerCallbackToken('s1', 'veo')).not.toBe(t);
  });

  it('secrets compare equal only when equal, whatever their lengths', () => {
    expect(secretsEqual('abc', 'abc')).toBe(true);
    expect(secretsEqual('abc', 'abd')).toBe(false);
    expect(secretsEqual('abc', 'abcd')).toBe(false);
    expect(secretsEqual('', 'a')).toBe(false);
  });

  it('a callback token matches only the expected one, byte for byte', () => {
    const t = jobCallbackToken('s1', 'veo', 'job_1');
    expect(tokenMatches(t, t)).toBe(true);
    expect(tokenMatches(t.slice(0, -1) + (t.endsWith('A') ? 'B' : 'A'), t)).toBe(false);
    expect(tokenMatches(t.slice(1), t)).toBe(false);
    expect(tokenMatches(`${t}x`, t)).toBe(false);
    // Same number of UTF-16 units, more bytes: refused, not thrown on.
    expect(tokenMatches('é' + t.slice(1), t)).toBe(false);
    expect(tokenMatches('', t)).toBe(false);
  });

  it.each([
    [undefined, true],
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['Application/JSON', true],
    ['application/cloudevents+json', true],
    ['text/plain', false],
    ['application/x-www-form-urlencoded', false],
    ['multipart/form-data; boundary=x', false],
  ])('content type %s is JSON: %s', (type, ok) => {
    expect(isJsonContentType(type)).toBe(ok);
  });

  it('measures nesting without being fooled by brackets inside strings', () => {
    expect(jsonDepth('{"a":[1,{"b":2}]}')).toBe(3);
    expect(jsonDepth('{"a":"[[[[[\\"[[["}')).toBe(1);
    expect(() => parseJsonObject(new TextEncoder().encode(`{"a":${'['.repeat(100)}${']'.repeat(100)}}`))).toThrow(/nested/);
  });

  it('reads at most the limit', async () => {
    const ok = await readBodyLimited(new Request('http://x', { method: 'POST', body: 'abc' }), 3);
    expect(new TextDecoder().decode(ok)).toBe('abc');
    await expect(readBodyLimited(new Request('http://x', { method: 'POST', body: 'abcd' }), 3)).rejects.toBeInstanceOf(AppError);
  });
});
