import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { Scalar } from '@scalar/hono-api-reference';
import type { AppEnv } from '../context.js';

export const DOCS_PATH = '/docs';
export const DOCS_SCRIPT_PATH = '/docs/scalar.js';

/** The browser bundle of the reference page, served by the relay itself so the page works with no internet. */
const require = createRequire(import.meta.url);
const bundlePath = require.resolve('@scalar/api-reference/browser/standalone.js');
// The package does not export its package.json; it sits two folders above dist/browser/.
const bundleVersion = (JSON.parse(readFileSync(join(bundlePath, '../../../package.json'), 'utf8')) as { version: string }).version;
const bundleSize = statSync(bundlePath).size;
const bundleTag = `"scalar-${bundleVersion}-${bundleSize}"`;

/**
 * `GET /docs`: an interactive reference for `/openapi.json`, and `GET /docs/scalar.js`, the script it
 * runs. Public like `/openapi.json` (the page only shows the public document; trying a `/v1` route
 * needs a key entered in the page). Neither route is part of the API document itself.
 */
export function registerDocsRoutes(app: OpenAPIHono<AppEnv>) {
  app.get(
    DOCS_PATH,
    Scalar({
      pageTitle: 'callback-relay API',
      url: '/openapi.json',
      cdn: DOCS_SCRIPT_PATH,
      // Everything the page loads must come from the relay: no web fonts, no hosted assistant, and
      // no toolbar linking to the vendor's hosted services.
      withDefaultFonts: false,
      agent: { disabled: true },
      telemetry: false,
      showDeveloperTools: 'never',
    }),
  );
  app.get(DOCS_SCRIPT_PATH, (c) => {
    // The file changes only when the package does: browsers revalidate and usually get a 304.
    c.header('etag', bundleTag);
    c.header('cache-control', 'no-cache');
    if (c.req.header('if-none-match') === bundleTag) return c.body(null, 304);
    c.header('content-type', 'text/javascript; charset=utf-8');
    c.header('content-length', String(bundleSize));
    return c.body(Readable.toWeb(createReadStream(bundlePath)) as ReadableStream);
  });
}
