import type { ProviderConfig } from '../config.js';
import { createAivideoapiAdapter } from './aivideoapi.js';
import { createOpenaiVideosAdapter } from './openai-videos.js';
import { createToapisAdapter } from './toapis.js';
import { createVideoGenerationsAdapter } from './video-generations.js';
import type { FetchFn } from './http.js';
import { MalformedPayloadError, ProviderCallError, type ProviderAdapter } from './types.js';
import type { Histogram } from '../ops/metrics.js';

export type { ProviderAdapter } from './types.js';

/** The configured providers by name, each behind its kind's adapter. */
export type Providers = ReadonlyMap<string, ProviderAdapter>;

export function createAdapter(config: ProviderConfig, fetchFn: FetchFn = fetch): ProviderAdapter {
  switch (config.kind) {
    case 'aivideoapi':
      return createAivideoapiAdapter(config, fetchFn);
    case 'toapis':
      return createToapisAdapter(config, fetchFn);
    case 'video-generations':
      return createVideoGenerationsAdapter(config, fetchFn);
    case 'openai-videos':
      return createOpenaiVideosAdapter(config, fetchFn);
  }
}

/** A failed provider call as a label: `http_4xx`, `http_5xx`, `timeout`, `network_error`, `bad_response`, `malformed`. */
function failureLabel(err: unknown): string {
  if (err instanceof ProviderCallError) {
    const { status, code } = err.failure;
    return status !== null && code !== 'bad_response' ? `http_${Math.floor(status / 100)}xx` : code;
  }
  return err instanceof MalformedPayloadError ? 'malformed' : 'error';
}

/** The adapter with its two provider calls timed into `latency` by provider, operation and outcome. */
export function timedAdapter(adapter: ProviderAdapter, latency: Histogram): ProviderAdapter {
  const provider = adapter.config.name;
  const timed =
    <A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const stop = latency.startTimer({ provider, operation });
      try {
        const result = await call(...args);
        stop({ outcome: 'ok' });
        return result;
      } catch (err) {
        stop({ outcome: failureLabel(err) });
        throw err;
      }
    };
  return { ...adapter, submit: timed('submit', adapter.submit), fetchStatus: timed('status', adapter.fetchStatus) };
}

export function createProviders(configs: Iterable<ProviderConfig>, fetchFn: FetchFn = fetch, latency?: Histogram): Providers {
  return new Map(
    [...configs].map((c) => {
      const adapter = createAdapter(c, fetchFn);
      return [c.name, latency ? timedAdapter(adapter, latency) : adapter];
    }),
  );
}
