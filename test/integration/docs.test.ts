import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  it('the reference page is not itself listed in the API document', async () => {
    const doc = (await (await relay.app.request('/openapi.json')).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/docs'))).toEqual([]);
  });
});
