import type { ProviderConfig } from '../config.js';
import type { JobRequest, RuleViolation } from '../jobs/request.js';
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
  /**
   * True when the payload only names the task ("thin" webhooks): the relay fetches the status
   * instead of reading it from the body.
   */
  thin?: boolean;
}

/** The outcome of checking a signed callback's signature. */
export type SignatureCheck = { ok: true } | { ok: false; reason: string };

export interface SubmitRequest {
  /** Path under the provider's base URL, e.g. `/v1/videos/generations`. */
  path: string;
  /** The provider's native JSON body, `provider_options` merged in. */
  body: Record<string, unknown>;
}

export interface SubmitResult {
  taskId: string;
  /** The state the submit answer reports, when it reports one. */
  observation: Observation | null;
}

/** Everything the relay knows about one provider kind. Nothing outside `providers/` knows a provider's field names. */
export interface ProviderAdapter {
  readonly config: ProviderConfig;
  /** Request headers kept with a stored callback (lower case). */
  readonly callbackHeaders: readonly string[];
  /**
   * Whether callbacks carry a signature the adapter checks (`verifyCallback`). Unsigned callbacks
   * are believed only after the provider's status endpoint confirms a terminal claim.
   */
  readonly signedCallbacks: boolean;
  /** Whether result videos can only be downloaded with the provider key (served via `/v1/jobs/{id}/content`). */
  readonly keyedContent: boolean;

  /** The provider's documented request rules; an empty list means the request may be sent. Pure. */
  validateRequest(req: JobRequest): RuleViolation[];
  /** The native submit request for a validated request; `callbackUrl` is null for kinds that do not call back. Pure. */
  buildSubmit(req: JobRequest, callbackUrl: string | null): SubmitRequest;
  /** Reads a 2xx submit answer. Throws MalformedPayloadError when it names no task. Pure. */
  parseSubmitResponse(body: unknown): SubmitResult;
  /** Reads a status document (`GET` of the task). Null for a status that changes nothing. Pure. */
  parseStatus(body: unknown): Observation | null;
  /** Reads a callback already known to be a JSON object. Throws MalformedPayloadError. Pure. */
  parseCallback(req: CallbackRequest): ParsedCallback;
  /** For signed kinds: checks the signature over the raw bytes. Pure apart from the clock passed in. */
  verifyCallback?(req: CallbackRequest, now: Date): SignatureCheck;
  /** A provider-assigned id of this callback delivery, for de-duplication (e.g. a webhook id). */
  callbackDeliveryId?(req: CallbackRequest): string | null;

  /** Sends the job to the provider. Throws ProviderCallError (with `ambiguous` set when it may have arrived). */
  submit(req: JobRequest, callbackUrl: string | null, signal?: AbortSignal): Promise<SubmitResult>;
  /** Asks the provider for a task's status now. Throws ProviderCallError. */
  fetchStatus(taskId: string, signal?: AbortSignal): Promise<Observation | null>;
  /** For `keyedContent` kinds: the path of the task's video under the base URL. */
  contentPath?(taskId: string): string;
}
