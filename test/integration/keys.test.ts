import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashKey } from '../../src/auth/keys.js';
import { dbKind } from '../helpers/db.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';

let relay: TestRelay;

beforeAll(async () => {
  relay = await startTestRelay({});
});
afterAll(() => relay?.close());

interface CreatedKey {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  created_at: string;
  key: string;
}
interface ListedKey {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}
interface ErrorAnswer {
  error: { code: string; details?: { field: string }[] };
}

async function createKey(body: unknown, key?: string): Promise<CreatedKey> {
  const res = await relay.api('POST', '/v1/keys', body, key);
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as CreatedKey;
}

async function listKeys(): Promise<ListedKey[]> {
  const res = await relay.api('GET', '/v1/keys');
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: ListedKey[] }).data;
}

describe(`keys API (${dbKind})`, () => {
  it('a created key works, is listed without its secret, and stops working once revoked', async () => {
    const created = await createKey({ name: 'reporting', scopes: ['jobs:read'] });
    expect(created).toEqual({
      id: expect.stringMatching(/^key_/),
      name: 'reporting',
      prefix: created.key.slice(0, 10),
      scopes: ['jobs:read'],
      created_at: expect.any(String),
      key: expect.stringMatching(/^crk_[\w-]{43}$/),
    });

    // Authenticated (404 for a missing job rather than 401), and limited to its scope.
    expect((await relay.api('GET', '/v1/jobs/job_missing', undefined, created.key)).status).toBe(404);
    expect((await relay.api('POST', '/v1/jobs/track', { provider: 'x', provider_task_id: 't' }, created.key)).status).toBe(403);

    const listed = await listKeys();
    expect(listed).toContainEqual({
      id: created.id,
      name: 'reporting',
      prefix: created.prefix,
      scopes: ['jobs:read'],
      created_at: created.created_at,
      // It was just used (the two requests above).
      last_used_at: expect.any(String),
      revoked_at: null,
    });
    const text = JSON.stringify(listed);
    expect(text).not.toContain(created.key);
    expect(text).not.toContain(hashKey(created.key));
    for (const k of listed) expect(Object.keys(k)).not.toContain('key');

    const revoked = await relay.api('DELETE', `/v1/keys/${created.id}`);
    expect(revoked.status).toBe(200);
    const revokedKey = (await revoked.json()) as ListedKey;
    expect(revokedKey).toMatchObject({ id: created.id, revoked_at: expect.any(String) });
    expect(JSON.stringify(revokedKey)).not.toContain(created.key);

    const denied = await relay.api('GET', '/v1/jobs/job_missing', undefined, created.key);
    expect(denied.status).toBe(401);
    expect(((await denied.json()) as ErrorAnswer).error.code).toBe('unauthorized');
    expect((await listKeys()).find((k) => k.id === created.id)?.revoked_at).toBe(revokedKey.revoked_at);
  });

  it('revoking twice is fine and keeps the first revocation time', async () => {
    const { id } = await createKey({ name: 'twice', scopes: ['jobs:write'] });
    const first = (await (await relay.api('DELETE', `/v1/keys/${id}`)).json()) as ListedKey;
    const again = await relay.api('DELETE', `/v1/keys/${id}`);
    expect(again.status).toBe(200);
    expect(((await again.json()) as ListedKey).revoked_at).toBe(first.revoked_at);
  });

  it('revoking an unknown key is a 404', async () => {
    const res = await relay.api('DELETE', '/v1/keys/key_nope');
    expect(res.status).toBe(404);
    expect(((await res.json()) as ErrorAnswer).error.code).toBe('not_found');
  });

  it('lists keys newest first, revoked ones included', async () => {
    const older = await createKey({ name: 'older', scopes: ['jobs:read'] });
    const newer = await createKey({ name: 'newer', scopes: ['subscriptions:manage', 'jobs:read'] });
    const ids = (await listKeys()).map((k) => k.id);
    expect(ids.indexOf(newer.id)).toBeLessThan(ids.indexOf(older.id));
  });

  it('a key created with admin can manage keys itself; repeated scopes are stored once', async () => {
    const admin = await createKey({ name: 'ops', scopes: ['admin', 'admin'] });
    expect(admin.scopes).toEqual(['admin']);
    const made = await createKey({ name: 'by-ops', scopes: ['jobs:read'] }, admin.key);
    expect(made.name).toBe('by-ops');
  });

  it('keys without the admin scope are refused with 403, and no key with 401', async () => {
    const { id } = await createKey({ name: 'victim', scopes: ['jobs:read'] });
    const nonAdmin = await relay.keyWith('jobs:read', 'jobs:write', 'subscriptions:manage');
    const calls: [string, string, unknown][] = [
      ['POST', '/v1/keys', { name: 'sneaky', scopes: ['admin'] }],
      ['GET', '/v1/keys', undefined],
      ['DELETE', `/v1/keys/${id}`, undefined],
    ];
    for (const [method, path, body] of calls) {
      const res = await relay.api(method, path, body, nonAdmin);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(((await res.json()) as ErrorAnswer).error.code).toBe('forbidden');
      expect((await relay.app.request(path, { method })).status, `${method} ${path} without a key`).toBe(401);
    }
    expect((await listKeys()).find((k) => k.id === id)?.revoked_at).toBeNull();
    expect((await listKeys()).map((k) => k.name)).not.toContain('sneaky');
  });

  it.each([
    [{ scopes: ['jobs:read'] }, 'name'],
    [{ name: '', scopes: ['jobs:read'] }, 'name'],
    [{ name: 'x' }, 'scopes'],
    [{ name: 'x', scopes: [] }, 'scopes'],
    [{ name: 'x', scopes: ['jobs:delete'] }, 'scopes'],
    [{ name: 'x', scopes: 'admin' }, 'scopes'],
    [{ name: 'x', scopes: ['admin'], key: 'crk_chosen' }, 'key'],
  ])('creating a key with a bad body is a 400 naming the field: %o', async (body, field) => {
    const res = await relay.api('POST', '/v1/keys', body);
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as ErrorAnswer;
    expect(error.code).toBe('invalid_request');
    expect(JSON.stringify(error)).toContain(field);
  });
});
