import { type OpenAPIHono, z } from '@hono/zod-openapi';
import { providerCallbackUrl } from '../callbacks/tokens.js';
import type { AppEnv } from '../context.js';
import { protectedRoute } from './openapi.js';

const Provider = z
  .object({
    name: z.string(),
    kind: z.string(),
    base_url: z.string(),
    callbacks: z.boolean(),
    signed_callbacks: z.boolean(),
    verify_by_fetch: z.boolean(),
    callback_url: z
      .string()
      .nullable()
      .openapi({ description: 'Where this provider should send callbacks for jobs tracked by task id; null for poll-only providers.' }),
  })
  .openapi('Provider');

const listRoute = protectedRoute('admin', {
  method: 'get',
  path: '/v1/providers',
  summary: 'The configured providers, with their shared callback URL',
  tags: ['providers'],
  responses: {
    200: { content: { 'application/json': { schema: z.object({ data: z.array(Provider) }) } }, description: 'Providers.' },
  },
});

export function registerProviderRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(listRoute, (c) => {
    const { providers, config, secret } = c.var.deps;
    const data = [...providers.values()].map(({ config: p, signedCallbacks }) => ({
      name: p.name,
      kind: p.kind,
      base_url: p.base_url,
      callbacks: p.callbacks,
      signed_callbacks: signedCallbacks,
      verify_by_fetch: p.verify_by_fetch,
      callback_url: p.callbacks ? providerCallbackUrl(config.publicBaseUrl, secret, p.name) : null,
    }));
    return c.json({ data }, 200);
  });
}
