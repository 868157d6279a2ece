import { describe, expect, it } from 'vitest';
import { Counter, createMetrics, escapeLabelValue, Gauge, Histogram, renderPrometheus } from '../../src/ops/metrics.js';
import { processGauges } from '../../src/ops/process-metrics.js';
import { parseExposition } from '../helpers/prometheus.js';

describe('Prometheus rendering', () => {
  it('renders counters, gauges and histograms as valid exposition text', () => {
    const metrics = createMetrics();
    metrics.callbacks.inc({ provider: 'veo', verdict: 'applied' });
    metrics.callbacks.inc({ provider: 'veo', verdict: 'applied' });
    metrics.callbacks.inc({ verdict: 'duplicate', provider: 'veo' });
    metrics.httpInFlight.inc();
    metrics.callbackLatency.observe(0.003, { provider: 'veo', result: 'stored' });
    metrics.callbackLatency.observe(0.2, { provider: 'veo', result: 'stored' });
    metrics.callbackLatency.observe(120, { provider: 'veo', result: 'stored' });

    const page = parseExposition(renderPrometheus(metrics, [{ name: 'relay_queue_depth', help: 'Work waiting', samples: [{ labels: { queue: 'queued_jobs' }, value: 3 }] }]));

    const callbacks = page.get('relay_callbacks_total')!;
    expect(callbacks.type).toBe('counter');
    expect(callbacks.samples).toEqual([
      { name: 'relay_callbacks_total', labels: { provider: 'veo', verdict: 'applied' }, value: 2 },
      // The same label set in another order is the same series.
      { name: 'relay_callbacks_total', labels: { provider: 'veo', verdict: 'duplicate' }, value: 1 },
    ]);
    expect(page.get('relay_http_requests_in_flight')).toMatchObject({ type: 'gauge', samples: [{ labels: {}, value: 1 }] });
    expect(page.get('relay_queue_depth')).toMatchObject({ type: 'gauge', samples: [{ labels: { queue: 'queued_jobs' }, value: 3 }] });
    // Families with no series yet are still announced, so a dashboard finds them before the first event.
    expect(page.get('relay_deliveries_total')).toMatchObject({ type: 'counter', samples: [] });
    expect(page.get('relay_delivery_seconds')).toMatchObject({ type: 'histogram', samples: [] });
  });

  it('histogram buckets are cumulative, end in +Inf, and agree with _count and _sum', () => {
    const h = new Histogram('test_seconds', 'test', [0.1, 1, 10]);
    for (const v of [0.05, 0.1, 0.5, 1, 5, 50]) h.observe(v, { op: 'x' });
    const metrics = { ...createMetrics(), h } as ReturnType<typeof createMetrics>;
    const family = parseExposition(renderPrometheus(metrics)).get('test_seconds')!;
    const buckets = family.samples.filter((s) => s.name === 'test_seconds_bucket').map((s) => [s.labels.le, s.value]);
    // `le` is inclusive: 0.1 falls in the 0.1 bucket, 1 in the 1 bucket.
    expect(buckets).toEqual([
      ['0.1', 2],
      ['1', 4],
      ['10', 5],
      ['+Inf', 6],
    ]);
    expect(family.samples.find((s) => s.name === 'test_seconds_count')?.value).toBe(6);
    expect(family.samples.find((s) => s.name === 'test_seconds_sum')?.value).toBeCloseTo(56.65);
    expect(family.samples.every((s) => s.labels.op === 'x')).toBe(true);
  });

  it('escapes backslashes, quotes and newlines in label values and help text, and nothing else', () => {
    expect(escapeLabelValue('a\\b"c\nd\té')).toBe('a\\\\b\\"c\\nd\té');
    const c = new Counter('odd_total', 'help with a \\ and a\nnewline');
    const hostile = 'x"} 1\nfake_metric{a="b\\';
    c.inc({ provider: hostile, verdict: 'ünïcode ✓' });
    const metrics = { ...createMetrics(), c } as ReturnType<typeof createMetrics>;
    const text = renderPrometheus(metrics);
    const page = parseExposition(text);
    expect(page.has('fake_metric')).toBe(false);
    expect(page.get('odd_total')).toEqual({
      help: 'help with a \\ and a\nnewline',
      type: 'counter',
      samples: [{ name: 'odd_total', labels: { provider: hostile, verdict: 'ünïcode ✓' }, value: 1 }],
    });
  });

  it('refuses invalid metric and label names instead of writing a page Prometheus would reject', () => {
    expect(() => new Counter('bad-name', 'x')).toThrow(/invalid metric name/);
    expect(() => new Counter('ok_total', 'x').inc({ 'bad-label': 'v' })).toThrow(/invalid metric label name/);
    expect(() => new Counter('ok_total', 'x').inc({ __reserved: 'v' })).toThrow(/invalid metric label name/);
    expect(() => new Counter('ok_total', 'x').inc({}, -1)).toThrow(/only go up/);
    expect(() => new Histogram('h', 'x', [1, 1])).toThrow(/increasing/);
    expect(() => renderPrometheus(createMetrics(), [{ name: 'relay_callbacks_total', help: 'again', samples: [] }])).toThrow(/twice/);
  });

  it('gauges go up and down, and +Inf, -Inf and NaN are spelled as Prometheus expects', () => {
    const g = new Gauge('level', 'x');
    g.inc({ a: '1' }, 5);
    g.dec({ a: '1' }, 2);
    g.set({ a: 'inf' }, Infinity);
    g.set({ a: 'ninf' }, -Infinity);
    g.set({ a: 'nan' }, NaN);
    const text = renderPrometheus({ ...createMetrics(), g } as ReturnType<typeof createMetrics>);
    expect(text).toContain('level{a="1"} 3\n');
    expect(text).toContain('level{a="inf"} +Inf\n');
    expect(text).toContain('level{a="ninf"} -Inf\n');
    expect(text).toContain('level{a="nan"} NaN\n');
    parseExposition(text);
  });

  it('startTimer observes the elapsed seconds with the labels known at the end', async () => {
    const h = new Histogram('t_seconds', 't');
    const stop = h.startTimer({ provider: 'p' });
    await new Promise((r) => setTimeout(r, 20));
    const seconds = stop({ outcome: 'ok' });
    expect(seconds).toBeGreaterThanOrEqual(0.015);
    expect(h.count({ provider: 'p', outcome: 'ok' })).toBe(1);
  });

  it('process figures are present and plausible', () => {
    const page = parseExposition(renderPrometheus(createMetrics(), processGauges()));
    expect(page.get('process_resident_memory_bytes')!.samples[0]!.value).toBeGreaterThan(10 * 1024 * 1024);
    expect(page.get('process_cpu_seconds_total')).toMatchObject({ type: 'counter' });
    expect(page.get('process_cpu_seconds_total')!.samples[0]!.value).toBeGreaterThan(0);
    expect(page.get('process_uptime_seconds')!.samples[0]!.value).toBeGreaterThan(0);
    expect(page.get('nodejs_eventloop_lag_seconds')!.samples.map((s) => s.labels.stat)).toEqual(['mean', 'p50', 'p99', 'max']);
  });
});
