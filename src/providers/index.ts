import type { ProviderConfig } from '../config.js';
import { createAivideoapiAdapter } from './aivideoapi.js';
import { createOpenaiVideosAdapter } from './openai-videos.js';
import { createToapisAdapter } from './toapis.js';
import { createVideoGenerationsAdapter } from './video-generations.js';
import type { FetchFn } from './http.js';
import type { ProviderAdapter } from './types.js';

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

export function createProviders(configs: Iterable<ProviderConfig>, fetchFn: FetchFn = fetch): Providers {
  return new Map([...configs].map((c) => [c.name, createAdapter(c, fetchFn)]));
}
