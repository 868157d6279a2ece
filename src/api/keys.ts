import { type OpenAPIHono, z } from '@hono/zod-openapi';
import { createApiKey, listApiKeys, revokeApiKey, type Scope, scopes } from '../auth/keys.js';
import type { AppEnv } from '../context.js';
import type { ApiKeyRow } from '../db/schema.js';
import { errorResponse, jsonResponse, protectedRoute } from './openapi.js';

const KeyId = z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: 'key_01jd2x…' });

const CreateKeyBody = z
  .object({
    name: z.string().trim().min(1).max(100),
    scopes: z.array(z.enum(scopes)).min(1).max(scopes.length * 2),
  })
  .strict()
  .openapi('CreateApiKeyRequest');

const ApiKey = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string().openapi({ description: 'The first characters of the key, to tell keys apart.' }),
    scopes: z.array(z.enum(scopes)),
    created_at: z.string(),
    last_used_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .openapi('ApiKey');

const CreatedApiKey = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string(),
    scopes: z.array(z.enum(scopes)),
    created_at: z.string(),
    key: z.string().openapi({ description: 'The key itself. It is shown only in this response; only its hash is stored.' }),
  })
  .openapi('CreatedApiKey');

const createKeyRoute = protectedRoute('admin', {
  method: 'post',
  path: '/v1/keys',
  summary: 'Create an API key',
  tags: ['keys'],
  request: { body: { content: { 'application/json': { schema: CreateKeyBody } }, required: true } },
  responses: { 201: jsonResponse(CreatedApiKey, 'The new key, with the secret shown this once.') },
});

const listKeysRoute = protectedRoute('admin', {
  method: 'get',
  path: '/v1/keys',
  summary: 'List API keys, revoked ones included, newest first',
  description: 'Never shows a key or its hash.',
  tags: ['keys'],
  responses: { 200: jsonResponse(z.object({ data: z.array(ApiKey) }), 'The keys.') },
});

const revokeKeyRoute = protectedRoute('admin', {
  method: 'delete',
  path: '/v1/keys/{id}',
  summary: 'Revoke an API key',
  description: 'The key stops working at once. Revoking a revoked key changes nothing and answers the same.',
  tags: ['keys'],
  request: { params: z.object({ id: KeyId }) },
  responses: { 200: jsonResponse(ApiKey, 'The revoked key.'), 404: errorResponse('No such key.') },
});

/** A key as the API and the CLI show it: never the key itself or its hash. */
export function apiKeyView(row: ApiKeyRow) {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes as Scope[],
    created_at: row.createdAt.toISOString(),
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
    revoked_at: row.revokedAt?.toISOString() ?? null,
  };
}

export function registerKeyRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(createKeyRoute, async (c) => {
    const body = c.req.valid('json');
    const { key, row } = await createApiKey(c.var.deps.db, { name: body.name, scopes: [...new Set(body.scopes)] });
    const view = apiKeyView(row);
    return c.json({ id: view.id, name: view.name, prefix: view.prefix, scopes: view.scopes, created_at: view.created_at, key }, 201);
  });
  app.openapi(listKeysRoute, async (c) => {
    const rows = await listApiKeys(c.var.deps.db);
    return c.json({ data: rows.map(apiKeyView) }, 200);
  });
  app.openapi(revokeKeyRoute, async (c) => {
    const row = await revokeApiKey(c.var.deps.db, c.req.valid('param').id);
    return c.json(apiKeyView(row), 200);
  });
}
