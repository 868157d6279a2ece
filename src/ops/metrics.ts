/**
 * The relay's metrics, kept in memory by the flows that produce them and rendered in Prometheus'
 * text exposition format (version 0.0.4) by `renderPrometheus`. Written here rather than taken from
 * prom-client: counters, gauges and fixed-bucket histograms are all the relay needs, and every scrape
 * is a few hundred lines of text.
 */
import type { Db } from '../db/client.js';
import { startEventLoopMonitor } from './process-metrics.js';
import { jobQueueDepths } from './queue-depths.js';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  /** The family name plus a suffix for histograms (`_bucket`, `_sum`, `_count`). */
  name: string;
  labels: Labels;
  value: number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label names already checked: the hot paths pass the same few names on every call. */
const checkedNames = new Set<string>();

/** One series' labels, sorted so the same set always gives the same key. */
function labelKey(labels: Labels): string {
  const names = Object.keys(labels).sort();
  for (const n of names) {
    if (checkedNames.has(n)) continue;
    if (!LABEL_NAME.test(n) || n.startsWith('__')) throw new Error(`invalid metric label name "${n}"`);
    checkedNames.add(n);
  }
  return JSON.stringify(names.map((n) => [n, labels[n]]));
}

/** A named metric with one series per label set. */
export abstract class MetricFamily<S> {
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  protected readonly series = new Map<string, { labels: Labels; state: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name "${name}"`);
  }

  protected state(labels: Labels, init: () => S): S {
    const key = labelKey(labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, state: init() };
      this.series.set(key, entry);
    }
    return entry.state;
  }

  protected peek(labels: Labels): S | undefined {
    return this.series.get(labelKey(labels))?.state;
  }

  abstract samples(): Sample[];
}

/** A number that only goes up (restarts at zero with the process; Prometheus' `rate()` expects that). */
export class Counter extends MetricFamily<{ value: number }> {
  readonly type = 'counter';

  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`counter ${this.name} can only go up`);
    this.state(labels, () => ({ value: 0 })).value += by;
  }

  get(labels: Labels = {}): number {
    return this.peek(labels)?.value ?? 0;
  }

  samples(): Sample[] {
    return [...this.series.values()].map(({ labels, state }) => ({ name: this.name, labels, value: state.value }));
  }
}

/** A number that goes up and down (things in flight, sizes). */
export class Gauge extends MetricFamily<{ value: number }> {
  readonly type = 'gauge';

  set(labels: Labels, value: number): void {
    this.state(labels, () => ({ value: 0 })).value = value;
  }

  inc(labels: Labels = {}, by = 1): void {
    this.state(labels, () => ({ value: 0 })).value += by;
  }

  dec(labels: Labels = {}, by = 1): void {
    this.inc(labels, -by);
  }

  get(labels: Labels = {}): number {
    return this.peek(labels)?.value ?? 0;
  }

  samples(): Sample[] {
    return [...this.series.values()].map(({ labels, state }) => ({ name: this.name, labels, value: state.value }));
  }
}

/**
 * Upper bounds in seconds from 1 ms to 60 s: callback handling sits at the low end, provider calls
 * and deliveries (timeouts of 15–30 s) reach the high end.
 */
export const LATENCY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

interface HistogramState {
  /** Observations per bucket (not cumulative); the last slot is above the highest bound (+Inf). */
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into fixed buckets, with their sum and count. */
export class Histogram extends MetricFamily<HistogramState> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  constructor(name: string, help: string, buckets: readonly number[] = LATENCY_BUCKETS) {
    super(name, help);
    if (!buckets.length || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new Error(`histogram ${name}: buckets must be finite and increasing`);
    }
    this.buckets = [...buckets];
  }

  /** Records one value (seconds, for the latency histograms). */
  observe(value: number, labels: Labels = {}): void {
    if (Number.isNaN(value)) return;
    const s = this.state(labels, () => ({ counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 }));
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Starts a clock; the function returned observes the seconds elapsed (with the labels known by then). */
  startTimer(labels: Labels = {}): (more?: Labels) => number {
    const started = performance.now();
    return (more = {}) => {
      const seconds = (performance.now() - started) / 1000;
      this.observe(seconds, { ...labels, ...more });
      return seconds;
    };
  }

  /** How many observations so far (for tests and for summaries). */
  count(labels: Labels = {}): number {
    return this.peek(labels)?.count ?? 0;
  }

  samples(): Sample[] {
    const out: Sample[] = [];
    for (const { labels, state } of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += state.counts[i]!;
        out.push({ name: `${this.name}_bucket`, labels: { ...labels, le: String(bound) }, value: cumulative });
      });
      out.push({ name: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: state.count });
      out.push({ name: `${this.name}_sum`, labels, value: state.sum });
      out.push({ name: `${this.name}_count`, labels, value: state.count });
    }
    return out;
  }
}

/**
 * A metric computed at scrape time (queue depths, process figures) rather than kept: a gauge unless
 * it is a running total read from elsewhere (CPU seconds).
 */
export interface ComputedMetric {
  name: string;
  help: string;
  type?: 'gauge' | 'counter';
  samples: { labels?: Labels; value: number }[];
}

/** Counts the relay reads from the database on each scrape, e.g. jobs waiting to be submitted. */
export type DepthQuery = (db: Db) => Promise<number>;

/** The queue-depth queries run on each scrape, one per `queue` label of `relay_queue_depth`. */
export class QueueDepths {
  readonly queries = new Map<string, DepthQuery>();

  register(queue: string, query: DepthQuery): void {
    this.queries.set(queue, query);
  }
}

export interface Metrics {
  /** Callbacks by `provider` (`(unknown)` when the URL names none configured) and `verdict`. */
  callbacks: Counter;
  /** Time to handle a callback, by `provider` and `result` (`accepted`, `rejected`, `error`). */
  callbackLatency: Histogram;
  /** Provider HTTP calls by `provider`, `operation` (`submit`, `status`) and `outcome`. */
  providerCallLatency: Histogram;
  polls: Counter;
  rateLimitWaits: Counter;
  submits: Counter;
  /** Delivery attempts by `outcome`, counted by the fan-out worker. */
  deliveries: Counter;
  /** Time of one delivery attempt, observed by the fan-out worker. */
  deliveryLatency: Histogram;
  /** HTTP requests by `method`, `route` (the pattern, never the raw path) and `status` class. */
  httpLatency: Histogram;
  httpInFlight: Gauge;
  /** Failures of the queries behind `relay_queue_depth`, by `queue`. */
  depthQueryErrors: Counter;
  /** What `relay_queue_depth` is computed from on each scrape; fan-out adds its queues here. */
  queueDepths: QueueDepths;
  /** Rows deleted by retention, by `table`. */
  pruned: Counter;
}

export function createMetrics(): Metrics {
  startEventLoopMonitor();
  const queueDepths = new QueueDepths();
  for (const [queue, query] of Object.entries(jobQueueDepths)) queueDepths.register(queue, query);
  return {
    callbacks: new Counter('relay_callbacks_total', 'Callbacks received, by provider and verdict'),
    callbackLatency: new Histogram('relay_callback_seconds', 'Time to handle a callback, from request to answer'),
    providerCallLatency: new Histogram('relay_provider_call_seconds', 'Provider API calls, by provider, operation and outcome'),
    polls: new Counter('relay_polls_total', 'Status polls by provider and outcome'),
    rateLimitWaits: new Counter('relay_rate_limit_waits_total', 'Times a worker found a provider budget empty or paused'),
    submits: new Counter('relay_submits_total', 'Submission attempts by provider and outcome'),
    deliveries: new Counter('relay_deliveries_total', 'Webhook delivery attempts by outcome'),
    deliveryLatency: new Histogram('relay_delivery_seconds', 'Time of one webhook delivery attempt'),
    httpLatency: new Histogram('relay_http_request_seconds', 'HTTP requests by method, route pattern and status class'),
    httpInFlight: new Gauge('relay_http_requests_in_flight', 'HTTP requests being handled now'),
    depthQueryErrors: new Counter('relay_queue_depth_errors_total', 'Queue-depth queries that failed during a scrape'),
    pruned: new Counter('relay_pruned_rows_total', 'Rows deleted by retention, by table'),
    queueDepths,
  };
}

/** `+Inf`, `-Inf` and `NaN` as Prometheus spells them; other numbers as JavaScript prints them. */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Label values escape backslash, double quote and line feed; nothing else. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function sampleLine(name: string, labels: Labels, value: number): string {
  const entries = Object.entries(labels);
  const text = entries.length ? `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}` : '';
  return `${name}${text} ${formatValue(value)}`;
}

function family(lines: string[], name: string, help: string, type: string, samples: readonly Sample[]): void {
  lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
  for (const s of samples) lines.push(sampleLine(s.name, s.labels, s.value));
}

/**
 * Every metric in `metrics` followed by those computed for this scrape, as one exposition
 * document. A family with no series yet still gets its HELP and TYPE, so dashboards find it.
 */
export function renderPrometheus(metrics: Metrics, extra: readonly ComputedMetric[] = []): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  const claim = (name: string) => {
    if (seen.has(name)) throw new Error(`metric ${name} is rendered twice`);
    seen.add(name);
  };
  for (const m of Object.values(metrics)) {
    if (!(m instanceof MetricFamily)) continue;
    claim(m.name);
    family(lines, m.name, m.help, m.type, m.samples());
  }
  for (const g of extra) {
    claim(g.name);
    if (!METRIC_NAME.test(g.name)) throw new Error(`invalid metric name "${g.name}"`);
    family(
      lines,
      g.name,
      g.help,
      g.type ?? 'gauge',
      g.samples.map((s) => {
        const labels = s.labels ?? {};
        labelKey(labels); // validates the names
        return { name: g.name, labels, value: s.value };
      }),
    );
  }
  return `${lines.join('\n')}\n`;
}
