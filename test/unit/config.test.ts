import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function withFile(json: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'relay-config-'));
  dirs.push(dir);
  const path = join(dir, 'relay.json');
  writeFileSync(path, typeof json === 'string' ? json : JSON.stringify(json));
  return path;
}

describe('configuration', () => {
  it('runs with no configuration at all', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 8080, host: '0.0.0.0', dataDir: './.relay-data', publicBaseUrl: 'http://localhost:8080' });
    expect(c.databaseUrl).toBeUndefined();
    expect(c.providers.size).toBe(0);
    expect(c.delivery.retry_schedule_s).toEqual([0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
    expect(c.databasePoolMax).toBe(10);
    expect(c.metricsToken).toBeUndefined();
  });

  it('reads the pool size and the metrics token', () => {
    const c = loadConfig({ DATABASE_POOL_MAX: '4', METRICS_TOKEN: 'metrics-token-0123456789' });
    expect(c).toMatchObject({ databasePoolMax: 4, metricsToken: 'metrics-token-0123456789' });
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ PUBLIC_BASE_URL: 'not a url' }, /PUBLIC_BASE_URL/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ RELAY_ADMIN_KEY: 'short' }, /RELAY_ADMIN_KEY/],
    [{ RELAY_CONFIG: '/nonexistent/relay.json' }, /RELAY_CONFIG/],
    [{ DATABASE_POOL_MAX: '1' }, /DATABASE_POOL_MAX/],
    [{ DATABASE_POOL_MAX: 'many' }, /DATABASE_POOL_MAX/],
    [{ METRICS_TOKEN: 'short' }, /METRICS_TOKEN/],
  ])('a bad value stops start-up naming it: %o', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(name);
  });

  it('reads providers with defaults filled in and ${ENV} interpolated', () => {
    const path = withFile({ providers: { 'veo-a': { kind: 'aivideoapi', base_url: 'https://api.example/', api_key: '${VEO_KEY}' } } });
    const c = loadConfig({ RELAY_CONFIG: path, VEO_KEY: 'sk-secret' });
    const p = c.providers.get('veo-a')!;
    expect(p).toMatchObject({
      name: 'veo-a',
      base_url: 'https://api.example',
      api_key: 'sk-secret',
      callbacks: true,
      verify_by_fetch: true,
      timeout_s: 30,
      poll: { initial_delay_s: 15, interval_s: 5, max_interval_s: 60, max_age_s: 7200, callback_grace_s: 600 },
      rate_limit: { submit_per_min: 300, status_per_min: 3000 },
    });
  });

  it('poll-only and signed kinds get their own defaults', () => {
    const path = withFile({
      providers: {
        vg: { kind: 'video-generations', base_url: 'https://a.example', api_key: 'k' },
        ta: { kind: 'toapis', base_url: 'https://b.example', api_key: 'k' },
      },
    });
    const c = loadConfig({ RELAY_CONFIG: path });
    expect(c.providers.get('vg')).toMatchObject({ callbacks: false, verify_by_fetch: true });
    // Without its webhook secret a toapis callback cannot be checked, so it is confirmed by fetch.
    expect(c.providers.get('ta')).toMatchObject({ callbacks: true, verify_by_fetch: true });
    const signed = withFile({
      providers: {
        ta: { kind: 'toapis', base_url: 'https://b.example', api_key: 'k', webhook_secret: 's3cret' },
        ov: { kind: 'openai-videos', base_url: 'https://c.example', api_key: 'k', webhook_secret: 'whsec_MTIz' },
        ov2: { kind: 'openai-videos', base_url: 'https://c.example', api_key: 'k' },
      },
    });
    const s = loadConfig({ RELAY_CONFIG: signed });
    expect(s.providers.get('ta')).toMatchObject({ callbacks: true, verify_by_fetch: false });
    expect(s.providers.get('ov')).toMatchObject({ callbacks: true, verify_by_fetch: false });
    expect(s.providers.get('ov2')).toMatchObject({ callbacks: false });
  });

  it.each([
    ['{not json', /not valid JSON/],
    [{ providers: { a: { kind: 'nope', base_url: 'https://a', api_key: 'k' } } }, /providers\.a\.kind/],
    [{ providers: { a: { kind: 'aivideoapi', api_key: 'k' } } }, /providers\.a\.base_url/],
    [{ providers: { a: { kind: 'aivideoapi', base_url: 'https://a', api_key: 'k', typo: 1 } } }, /typo/],
    [{ providers: { 'Bad Name': { kind: 'aivideoapi', base_url: 'https://a', api_key: 'k' } } }, /provider names/],
    [{ delivery: { timeout_s: -1 } }, /delivery\.timeout_s/],
    [{ providers: { a: { kind: 'aivideoapi', base_url: 'https://a', api_key: '${MISSING}' } } }, /MISSING/],
  ])('a bad config file is refused with the field named: %#', (json, message) => {
    const path = withFile(json);
    expect(() => loadConfig({ RELAY_CONFIG: path })).toThrow(message);
  });
});
