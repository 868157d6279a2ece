import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';
import { AppError, errorBody } from '../errors.js';

export const DOCS_PATH = '/docs';
export const DOCS_SCRIPT_PATH = '/docs/scalar.js';

/**
 * Scalar's browser bundle, which the build copies out of @scalar/api-reference (a dev dependency:
 * it brings Vue and ~240 MB with it). Found from the package root, so the compiled module
 * (dist/api/) and the source under the tests (src/api/) both read the built copy.
 */
export const scalarBundlePath = fileURLToPath(new URL('../../dist/docs/scalar.js', import.meta.url));

/**
 * The whole page: the bundle reads its configuration from the call below. Everything it loads must
 * come from the relay, so no web fonts, no hosted assistant, no telemetry, and no developer toolbar
 * (it links to the vendor's hosted services).
 */
const pageConfig = {
  url: '/openapi.json',
  withDefaultFonts: false,
  agent: { disabled: true },
  telemetry: false,
  showDeveloperTools: 'never',
};

const page = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>callback-relay API</title>
  </head>
  <body>
    <div id="app"></div>
    <script src="${DOCS_SCRIPT_PATH}"></script>
    <script>
      Scalar.createApiReference('#app', ${JSON.stringify(pageConfig, null, 2).replaceAll('\n', '\n      ')});
    </script>
  </body>
</html>
`;

/**
 * `GET /docs`: an interactive reference for `/openapi.json`, and `GET /docs/scalar.js`, the script it
 * runs. Public like `/openapi.json` (the page only shows the public document; trying a `/v1` route
 * needs a key entered in the page). Neither route is part of the API document itself.
 *
 * Without the built bundle (dist/ compiled by `tsc` alone) both answer 503 saying so; the rest of the
 * relay does not depend on it.
 */
export function registerDocsRoutes(app: OpenAPIHono<AppEnv>, bundlePath = scalarBundlePath) {
  // The ETag is the content's hash, so every replica and every rebuild of the same bundle agree on it;
  // it is computed again only when the file changes.
  let hashed: { stamp: string; tag: string } | undefined;
  const bundle = async () => {
    const found = await stat(bundlePath).catch(() => null);
    if (!found?.isFile()) return null;
    const stamp = `${found.size}:${found.mtimeMs}`;
    if (hashed?.stamp !== stamp) {
      const digest = createHash('sha256').update(await readFile(bundlePath)).digest('base64url');
      hashed = { stamp, tag: `"scalar-${digest.slice(0, 22)}"` };
    }
    return { size: found.size, tag: hashed.tag };
  };
  const missing = new AppError(
    'unavailable',
    // Not the absolute path: the answer is public.
    'the API reference page is not built: its script, dist/docs/scalar.js, is missing (npm run build copies it there). The API document is at /openapi.json.',
  );

  app.get(DOCS_PATH, async (c) => {
    if (!(await bundle())) return c.json(errorBody(missing, c.var.requestId ?? 'unknown'), 503);
    return c.html(page);
  });
  app.get(DOCS_SCRIPT_PATH, async (c) => {
    const found = await bundle();
    if (!found) return c.json(errorBody(missing, c.var.requestId ?? 'unknown'), 503);
    // Browsers revalidate and, until the bundle changes, get a 304.
    c.header('etag', found.tag);
    c.header('cache-control', 'no-cache');
    if (c.req.header('if-none-match') === found.tag) return c.body(null, 304);
    c.header('content-type', 'text/javascript; charset=utf-8');
    c.header('content-length', String(found.size));
    return c.body(Readable.toWeb(createReadStream(bundlePath)) as ReadableStream);
  });
}
