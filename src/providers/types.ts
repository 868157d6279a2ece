import type { ProviderConfig } from '../config.js';
import type { Observation } from '../jobs/states.js';

/** Why a provider call did not give an answer, and whether asking again may help. */
export interface ProviderFailure {
  /** 429, 5xx and network errors: the request did not take effect and may be repeated. */
  retryable: boolean;
  /** The HTTP status, or null when no response came back. */
  status: number | null;
  code: string;
  message: string;
  /** From `Retry-After`, when the provider sent one. */
  retryAfterMs?: number;
  /** True when the request may have reached the provider but no answer came (a timeout). */
  ambiguous?: boolean;
}

export class ProviderCallError extends Error {
  override name = 'ProviderCallError';
  constructor(readonly failure: ProviderFailure) {
    super(`${failure.code}: ${failure.message}`);
  }
}

/** A provider document the adapter cannot read: the request carrying it is answered 400. */
export class MalformedPayloadError extends Error {
  override name = 'MalformedPayloadError';
}

export interface CallbackRequest {
  /** Lower-case header names. */
  headers: Record<string, string>;
  /** The exact bytes received. */
  raw: Uint8Array;
  /** The parsed body (already known to be a JSON object). */
  body: Record<string, unknown>;
}

export interface ParsedCallback {
  /** The provider's task id the callback is about, if it names one. */
  taskId: string | null;
  /** What it says, or null for a status the relay does not act on. */
  observation: Observation | null;
}

/** Everything the relay knows about one provider kind. Nothing outside `providers/` knows a provider's field names. */
export interface ProviderAdapter {
  readonly config: ProviderConfig;
  /** Request headers kept with a stored callback (lower case). */
  readonly callbackHeaders: readonly string[];
  /** Whether the callback body alone is trustworthy, or a terminal claim must be fetched back first. */
  readonly signedCallbacks: boolean;
  parseStatus(body: unknown): Observation | null;
  parseCallback(req: CallbackRequest): ParsedCallback;
  /** Asks the provider for a task's status now. Throws ProviderCallError. */
  fetchStatus(taskId: string, signal?: AbortSignal): Promise<Observation | null>;
}
