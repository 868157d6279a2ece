import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OpenAPIHono } from '@hono/zod-openapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerDocsRoutes } from '../../src/api/docs.js';
import type { AppEnv } from '../../src/context.js';
import { dbKind } from '../helpers/db.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';

let relay: TestRelay;

beforeAll(async () => {
  relay = await startTestRelay({});
});
afterAll(() => relay?.close());

describe(`the API reference page (${dbKind})`, () => {
  it('GET /docs needs no key and is an HTML page that loads its script and the document from the relay', async () => {
    const res = await relay.app.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    const scripts = [...html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((m) => m[1]);
    expect(scripts).toEqual(['/docs/scalar.js']);
    expect(html).toContain('"url": "/openapi.json"');
    // Nothing fetched from elsewhere: no absolute URL in a src or href, and web fonts switched off.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).toContain('"withDefaultFonts": false');
  });

  it('GET /docs/scalar.js needs no key and is the JavaScript bundle, revalidated by its ETag', async () => {
    const res = await relay.app.request('/docs/scalar.js');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/javascript/);
    const body = await res.text();
    expect(body.length).toBeGreaterThan(100_000);
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(body));
    expect(body).toContain('createApiReference');

    const etag = res.headers.get('etag');
    expect(etag).toMatch(/^"scalar-/);
    const again = await relay.app.request('/docs/scalar.js', { headers: { 'if-none-match': etag! } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
  });

  it('the page and its script need no Scalar package at run time: the build copies the bundle into dist/', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(pkg.dependencies).filter((name) => name.startsWith('@scalar/'))).toEqual([]);
    const src = join(import.meta.dirname, '../../src');
    const importers = readdirSync(src, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && /from '@scalar\//.test(readFileSync(join(src, file), 'utf8')));
    expect(importers).toEqual([]);
  });

  it('without the built bundle, /docs and its script answer 503 saying what is missing', async () => {
    const bare = new OpenAPIHono<AppEnv>();
    registerDocsRoutes(bare, join(import.meta.dirname, 'no-such-dir/scalar.js'));
    for (const path of ['/docs', '/docs/scalar.js']) {
      const res = await bare.request(path);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('unavailable');
      expect(body.error.message).toContain('dist/docs/scalar.js, is missing (npm run build copies it there)');
      expect(body.error.message).not.toContain('no-such-dir');
    }
  });

  it('the reference page is not itself listed in the API document', async () => {
    const doc = (await (await relay.app.request('/openapi.json')).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/docs'))).toEqual([]);
  });
});
