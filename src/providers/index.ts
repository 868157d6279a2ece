import type { ProviderConfig } from '../config.js';
import { createAivideoapiAdapter } from './aivideoapi.js';
import type { FetchFn } from './http.js';
import type { ProviderAdapter } from './types.js';

export type { ProviderAdapter } from './types.js';

/** The configured providers by name, each behind its kind's adapter. */
export type Providers = ReadonlyMap<string, ProviderAdapter>;

export class UnsupportedKindError extends Error {
  override name = 'UnsupportedKindError';
}

export function createAdapter(config: ProviderConfig, fetchFn: FetchFn = fetch): ProviderAdapter {
  switch (config.kind) {
    case 'aivideoapi':
      return createAivideoapiAdapter(config, fetchFn);
    default:
      throw new UnsupportedKindError(
        `provider "${config.name}": kind "${config.kind}" is not implemented yet in this version of the relay`,
      );
  }
}

export function createProviders(configs: Iterable<ProviderConfig>, fetchFn: FetchFn = fetch): Providers {
  return new Map([...configs].map((c) => [c.name, createAdapter(c, fetchFn)]));
}
