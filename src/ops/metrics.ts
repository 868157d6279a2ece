/**
 * Counters kept in memory by the flows that produce them, for the operations work to expose in
 * Prometheus format. A counter is a map from a label set to a number.
 */
/** Labels in Prometheus' text form, sorted so the same set always gives the same key. */
function labelKey(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',');
}

export class Counter {
  readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Record<string, string>, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  get(labels: Record<string, string>): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
}

export interface Metrics {
  polls: Counter;
  rateLimitWaits: Counter;
  submits: Counter;
}

export function createMetrics(): Metrics {
  return {
    polls: new Counter('relay_polls_total', 'Status polls by provider and outcome'),
    rateLimitWaits: new Counter('relay_rate_limit_waits_total', 'Times a worker found a provider budget empty or paused'),
    submits: new Counter('relay_submits_total', 'Submission attempts by provider and outcome'),
  };
}
