import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { ComputedMetric } from './metrics.js';

const startedAt = Date.now() - process.uptime() * 1000;

/**
 * Event-loop delay is a property of the process, not of one relay instance, so one monitor serves
 * every scrape (the tests start several relays in one process). Its libuv timer does not keep the
 * process alive.
 */
let loopDelay: IntervalHistogram | null = null;
const RESOLUTION_MS = 10;

/** Starts sampling event-loop delay (every 10 ms); called when metrics are created, idempotent. */
export function startEventLoopMonitor(): void {
  if (loopDelay) return;
  loopDelay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  loopDelay.enable();
}

/** The sampler records whole intervals (≈ 10 ms when idle); the lag is what exceeds the interval. */
const lagSeconds = (ns: number) => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - RESOLUTION_MS) / 1000 : 0);

/**
 * Process figures for a scrape. Event-loop delay is summarised over the time since the previous
 * scrape (the sampler is reset each time), so with one scraper `max` is the worst stall in each
 * interval.
 */
export function processGauges(): ComputedMetric[] {
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  const gauges: ComputedMetric[] = [
    { name: 'process_resident_memory_bytes', help: 'Resident set size', samples: [{ value: mem.rss }] },
    { name: 'nodejs_heap_used_bytes', help: 'V8 heap in use', samples: [{ value: mem.heapUsed }] },
    { name: 'nodejs_heap_total_bytes', help: 'V8 heap reserved', samples: [{ value: mem.heapTotal }] },
    { name: 'nodejs_external_memory_bytes', help: 'Memory of C++ objects bound to JavaScript (buffers, WebAssembly)', samples: [{ value: mem.external }] },
    { name: 'process_cpu_seconds_total', help: 'CPU time used, user and system', type: 'counter', samples: [{ value: (cpu.user + cpu.system) / 1e6 }] },
    { name: 'process_cpu_user_seconds_total', help: 'CPU time used in user mode', type: 'counter', samples: [{ value: cpu.user / 1e6 }] },
    { name: 'process_cpu_system_seconds_total', help: 'CPU time used in system mode', type: 'counter', samples: [{ value: cpu.system / 1e6 }] },
    { name: 'process_start_time_seconds', help: 'When the process started, in unix seconds', samples: [{ value: Math.floor(startedAt / 1000) }] },
    { name: 'process_uptime_seconds', help: 'Seconds since the process started', samples: [{ value: Math.round(process.uptime() * 1000) / 1000 }] },
  ];
  if (loopDelay) {
    const h = loopDelay;
    const sampled = h.count > 0;
    gauges.push({
      name: 'nodejs_eventloop_lag_seconds',
      help: 'Event-loop lag since the previous scrape, by statistic',
      samples: [
        { labels: { stat: 'mean' }, value: sampled ? lagSeconds(h.mean) : 0 },
        { labels: { stat: 'p50' }, value: sampled ? lagSeconds(h.percentile(50)) : 0 },
        { labels: { stat: 'p99' }, value: sampled ? lagSeconds(h.percentile(99)) : 0 },
        { labels: { stat: 'max' }, value: sampled ? lagSeconds(h.max) : 0 },
      ],
    });
    h.reset();
  }
  return gauges;
}
