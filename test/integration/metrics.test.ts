import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { jobCallbackToken, providerCallbackToken } from '../../src/callbacks/tokens.js';
import { dbKind } from '../helpers/db.js';
import { aivideoapiDocs, type FakeAivideoapi, startFakeAivideoapi } from '../helpers/fake-aivideoapi.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';
import { ADMIN_KEY, SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';

let fake: FakeAivideoapi;
let relay: TestRelay;

beforeAll(async () => {
  fake = await startFakeAivideoapi();
  relay = await startTestRelay({ veo: { kind: 'aivideoapi', base_url: fake.baseUrl, api_key: fake.apiKey, timeout_s: 2 } });
});
afterAll(async () => {
  await relay?.close();
  await fake?.close();
});

async function scrape() {
  const res = await relay.app.request('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  return { text, page: parseExposition(text) };
}

async function track(taskId: string) {
  const res = await relay.api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: taskId });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string };
}

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  relay.app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

describe(`GET /metrics (${dbKind})`, () => {
  it('is served without an API key, in the exposition format, with every flow announced', async () => {
    const { page } = await scrape();
    for (const name of [
      'relay_callbacks_total',
      'relay_callback_seconds',
      'relay_provider_call_seconds',
      'relay_polls_total',
      'relay_submits_total',
      'relay_deliveries_total',
      'relay_delivery_seconds',
      'relay_http_request_seconds',
      'relay_queue_depth',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(page.has(name), name).toBe(true);
    }
  });

  it('counters move after a callback: verdict, handling time, the confirming provider call, the HTTP route', async () => {
    const taskId = `task-metrics-${Date.now()}`;
    const job = await track(taskId);
    fake.tasks.set(taskId, aivideoapiDocs.completed(taskId));
    const before = (await scrape()).page;

    const token = jobCallbackToken(SECRET, 'veo', job.id);
    const ok = await post(`/callbacks/veo/${job.id}/${token}`, aivideoapiDocs.completed(taskId), { 'x-event': 'task.completed' });
    expect(ok.status).toBe(200);
    const bad = await post(`/callbacks/veo/${job.id}/not-the-token`, aivideoapiDocs.completed(taskId));
    expect(bad.status).toBe(401);
    const unknown = await post(`/callbacks/nobody/${providerCallbackToken(SECRET, 'nobody')}`, {});
    expect(unknown.status).toBe(404);

    const { text, page } = await scrape();
    const delta = (name: string, labels: Record<string, string>) =>
      (sampleValue(page, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);

    expect(delta('relay_callbacks_total', { provider: 'veo', verdict: 'applied' })).toBe(1);
    expect(delta('relay_callbacks_total', { provider: 'veo', verdict: 'unauthorized' })).toBe(1);
    expect(delta('relay_callbacks_total', { provider: '(unknown)', verdict: 'unknown_provider' })).toBe(1);
    expect(delta('relay_callback_seconds_count', { provider: 'veo', result: 'stored' })).toBe(1);
    expect(delta('relay_callback_seconds_count', { provider: 'veo', result: 'rejected' })).toBe(1);
    // The unsigned completion was confirmed with one status call to the provider.
    expect(delta('relay_provider_call_seconds_count', { provider: 'veo', operation: 'status', outcome: 'ok' })).toBe(1);
    // Routes are labelled by pattern; three callbacks on two patterns (the 404 matched one too).
    expect(delta('relay_http_request_seconds_count', { method: 'POST', route: '/callbacks/:provider/:job_id/:token', status: '2xx' })).toBe(1);
    expect(delta('relay_http_request_seconds_count', { method: 'POST', route: '/callbacks/:provider/:job_id/:token', status: '4xx' })).toBe(1);
    expect(delta('relay_http_request_seconds_count', { method: 'POST', route: '/callbacks/:provider/:token', status: '4xx' })).toBe(1);
    expect(delta('relay_http_request_seconds_count', { method: 'POST', route: '/v1/jobs/track', status: '2xx' })).toBe(0);
    expect(sampleValue(page, 'relay_http_request_seconds_count', { method: 'POST', route: '/v1/jobs/track', status: '2xx' })).toBeGreaterThanOrEqual(1);

    // Neither the token nor the job id nor the stranger's provider name becomes a label.
    expect(text).not.toContain(token);
    expect(text).not.toContain(job.id);
    expect(text).not.toContain('nobody');
  });

  it('a failed provider call is timed with its outcome class', async () => {
    const taskId = `task-metrics-fail-${Date.now()}`;
    const job = await track(taskId);
    const before = (await scrape()).page;
    fake.failWith = 500;
    try {
      const res = await post(`/callbacks/veo/${job.id}/${jobCallbackToken(SECRET, 'veo', job.id)}`, aivideoapiDocs.completed(taskId));
      expect(res.status).toBe(503);
    } finally {
      fake.failWith = null;
    }
    const { page } = await scrape();
    const labels = { provider: 'veo', operation: 'status', outcome: 'http_5xx' };
    expect((sampleValue(page, 'relay_provider_call_seconds_count', labels) ?? 0) - (sampleValue(before, 'relay_provider_call_seconds_count', labels) ?? 0)).toBe(1);
    expect(sampleValue(page, 'relay_callbacks_total', { provider: 'veo', verdict: 'unverifiable' })).toBeGreaterThanOrEqual(1);
  });

  it('queue depths count queued jobs and due polls from the database at scrape time', async () => {
    const { page } = await scrape();
    // No workers run in this relay: every tracked job is a poll waiting for its first due time.
    expect(sampleValue(page, 'relay_queue_depth', { queue: 'queued_jobs' })).toBe(0);
    expect(sampleValue(page, 'relay_queue_depth', { queue: 'due_polls' })).toBe(0);

    const res = await relay.api('POST', '/v1/jobs', { provider: 'veo', model: 'veo-3', prompt: 'a drone shot' });
    expect(res.status).toBe(202);
    await relay.testDb.database.db.execute(
      // Make one tracked job due now, as the poll worker would find it.
      sql`update jobs set due_at = now() - interval '1 second' where id = (select id from jobs where status = 'submitted' limit 1)`,
    );
    const after = (await scrape()).page;
    expect(sampleValue(after, 'relay_queue_depth', { queue: 'queued_jobs' })).toBe(1);
    expect(sampleValue(after, 'relay_queue_depth', { queue: 'due_polls' })).toBe(1);
  });

  it('a queue registered by another flow is scraped too, and a failing query leaves only its own queue out', async () => {
    relay.deps.metrics.queueDepths.register('test_ok', async () => 7);
    relay.deps.metrics.queueDepths.register('test_broken', async () => {
      throw new Error('database down');
    });
    try {
      const { page } = await scrape();
      expect(sampleValue(page, 'relay_queue_depth', { queue: 'test_ok' })).toBe(7);
      expect(sampleValue(page, 'relay_queue_depth', { queue: 'test_broken' })).toBeUndefined();
      expect(sampleValue(page, 'relay_queue_depth_errors_total', { queue: 'test_broken' })).toBe(1);
    } finally {
      relay.deps.metrics.queueDepths.queries.delete('test_ok');
      relay.deps.metrics.queueDepths.queries.delete('test_broken');
    }
  });

  it('with METRICS_TOKEN set, the page needs that bearer (an API key is not enough)', async () => {
    const app = createApp({ ...relay.deps, config: { ...relay.deps.config, metricsToken: 'metrics-token-0123456789' } });
    expect((await app.request('/metrics')).status).toBe(401);
    expect((await app.request('/metrics', { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(401);
    const res = await app.request('/metrics', { headers: { authorization: 'Bearer metrics-token-0123456789' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('relay_callbacks_total');
  });
});
