import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../../src/auth/keys.js';
import { scopes } from '../../src/auth/keys.js';
import { jobCallbackToken } from '../../src/callbacks/tokens.js';
import { dbKind } from '../helpers/db.js';
import { aivideoapiDocs } from '../helpers/fake-aivideoapi.js';
import { ADMIN_KEY, SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';

let relay: TestRelay;

beforeAll(async () => {
  relay = await startTestRelay({ veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } });
});
afterAll(() => relay?.close());

const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string; request_id: string; details?: unknown } }).error;

describe(`internal API (${dbKind})`, () => {
  it('every /v1 route refuses a missing key, an unknown key and a key without its scope', async () => {
    const doc = (await (await relay.app.request('/openapi.json')).json()) as {
      paths: Record<string, Record<string, { 'x-required-scope'?: Scope }>>;
    };
    const v1Routes = relay.app.routes.filter((r) => r.path.startsWith('/v1/') && r.method !== 'ALL');
    expect(v1Routes.length).toBeGreaterThanOrEqual(5);
    for (const route of v1Routes) {
      const docPath = route.path.replace(/:(\w+)/g, '{$1}');
      const scope = doc.paths[docPath]?.[route.method.toLowerCase()]?.['x-required-scope'];
      expect(scope, `${route.method} ${route.path} declares its scope`).toBeDefined();
      const path = route.path.replace(/:(\w+)/g, 'x');
      const call = (key?: string) =>
        relay.app.request(path, { method: route.method, headers: key ? { authorization: `Bearer ${key}` } : {} });

      const none = await call();
      expect(none.status, `${route.method} ${route.path} without a key`).toBe(401);
      expect((await errorOf(none)).code).toBe('unauthorized');
      expect((await call('crk_not-a-real-key')).status).toBe(401);

      const others = scopes.filter((s) => s !== scope && s !== 'admin');
      const under = await call(await relay.keyWith(...others));
      expect(under.status, `${route.method} ${route.path} with [${others}]`).toBe(403);
      expect((await errorOf(under)).code).toBe('forbidden');
    }
  });

  it('a revoked key stops working', async () => {
    const key = await relay.keyWith('jobs:read');
    expect((await relay.api('GET', '/v1/jobs/job_x', undefined, key)).status).toBe(404);
    const { apiKeys } = await import('../../src/db/schema.js');
    await relay.deps.db.update(apiKeys).set({ revokedAt: new Date() });
    expect((await relay.api('GET', '/v1/jobs/job_x', undefined, key)).status).toBe(401);
    expect((await relay.api('GET', '/v1/jobs/job_x', undefined, ADMIN_KEY)).status).toBe(404);
  });

  it('errors have one shape with a request id', async () => {
    const res = await relay.api('GET', '/v1/jobs/job_missing');
    expect(res.status).toBe(404);
    const err = await errorOf(res);
    expect(err).toMatchObject({ code: 'not_found', message: expect.stringContaining('job_missing') });
    expect(err.request_id).toBe(res.headers.get('x-request-id'));
    const unknownRoute = await relay.app.request('/nowhere');
    expect(unknownRoute.status).toBe(404);
    expect((await errorOf(unknownRoute)).code).toBe('not_found');
  });

  it.each([
    [{ provider_task_id: 't' }, 'provider'],
    [{ provider: 'veo' }, 'provider_task_id'],
    [{ provider: 'nope', provider_task_id: 't' }, 'provider'],
    [{ provider: 'veo', provider_task_id: '' }, 'provider_task_id'],
    [{ provider: 'veo', provider_task_id: 't', notify_url: 'ftp://x' }, 'notify_url'],
    [{ provider: 'veo', provider_task_id: 't', metadata: { n: 1 } }, 'metadata'],
    [{ provider: 'veo', provider_task_id: 't', surprise: true }, 'surprise'],
  ])('tracking with a bad body is a 400 naming the field: %o', async (body, field) => {
    const res = await relay.api('POST', '/v1/jobs/track', body);
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.code).toBe('invalid_request');
    expect(JSON.stringify(err)).toContain(field);
  });

  it('a malformed JSON body is a 400 in the error shape', async () => {
    const res = await relay.app.request('/v1/jobs/track', {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: '{oops',
    });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('invalid_request');
  });

  it('tracking the same provider task twice is a conflict naming the first job', async () => {
    const first = (await (await relay.api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: 'dup-1' })).json()) as { id: string };
    const again = await relay.api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: 'dup-1' });
    expect(again.status).toBe(409);
    expect((await errorOf(again)).details).toEqual({ job_id: first.id });
  });

  it('a tracked job keeps its model, metadata and notify_url', async () => {
    const res = await relay.api('POST', '/v1/jobs/track', {
      provider: 'veo',
      provider_task_id: 'meta-1',
      model: 'veo-3',
      metadata: { order_id: 'A-17' },
      notify_url: 'https://internal.example/hooks/video',
    });
    expect(res.status).toBe(201);
    const job = (await res.json()) as Record<string, unknown>;
    expect(job).toMatchObject({
      provider: 'veo',
      model: 'veo-3',
      provider_task_id: 'meta-1',
      status: 'submitted',
      metadata: { order_id: 'A-17' },
      notify_url: 'https://internal.example/hooks/video',
      result: null,
      error: null,
    });
    expect(job.id).toMatch(/^job_[0-9a-z]{26}$/);
  });

  it('lists providers with their callback URL, for admins', async () => {
    const res = await relay.api('GET', '/v1/providers');
    expect(res.status).toBe(200);
    const { data } = (await res.json()) as { data: Record<string, unknown>[] };
    expect(data).toEqual([
      expect.objectContaining({ name: 'veo', kind: 'aivideoapi', callbacks: true, signed_callbacks: false, verify_by_fetch: false }),
    ]);
    expect(JSON.stringify(data)).not.toContain('"k"');
    expect(data[0]!.callback_url).toMatch(/^http:\/\/relay\.test\/callbacks\/veo\/[\w-]{32}$/);
  });

  it('health answers; readiness checks the database', async () => {
    expect((await relay.app.request('/healthz')).status).toBe(200);
    const ready = await relay.app.request('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok', checks: { database: 'ok', migrations: 'ok' } });
  });

  it('the OpenAPI document is valid 3.1 and describes every route', async () => {
    const doc = (await (await relay.app.request('/openapi.json')).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    const validation = await new Validator().validate(doc as never);
    expect(validation.errors ?? []).toEqual([]);
    expect(validation.valid).toBe(true);
    for (const path of ['/v1/jobs', '/v1/keys', '/v1/keys/{id}', '/v1/jobs/{id}/refresh', '/v1/jobs/{id}/content', '/v1/jobs/track', '/v1/jobs/{id}', '/v1/jobs/{id}/events', '/v1/jobs/{id}/callbacks', '/v1/providers', '/callbacks/{provider}/{token}', '/callbacks/{provider}/{job_id}/{token}', '/healthz', '/readyz']) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
  });
});

describe(`with the database gone (${dbKind})`, () => {
  it('callbacks get 503 (never 200), API calls get 503, readiness fails', async () => {
    const r = await startTestRelay({ veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } });
    const job = (await (await r.api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: 'gone-1' })).json()) as { id: string };
    await r.deps.database.close();
    try {
      const cb = await r.app.request(`/callbacks/veo/${job.id}/${jobCallbackToken(SECRET, 'veo', job.id)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(aivideoapiDocs.completed('gone-1')),
      });
      expect(cb.status).toBe(503);
      expect((await errorOf(cb)).code).toBe('unavailable');
      const api = await r.api('GET', `/v1/jobs/${job.id}`);
      expect(api.status).toBe(503);
      expect((await errorOf(api)).code).toBe('unavailable');
      expect((await r.app.request('/readyz')).status).toBe(503);
    } finally {
      await r.close();
    }
  });
});
