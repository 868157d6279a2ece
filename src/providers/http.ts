import type { ProviderConfig } from '../config.js';
import { readStreamLimited } from '../http/limits.js';
import { ProviderCallError, type ProviderFailure } from './types.js';

export type FetchFn = typeof fetch;

const MAX_PROVIDER_BODY = 4 * 1024 * 1024;

/** `Retry-After` as milliseconds: either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number.parseFloat(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Reads `{error:{code,message}}`, `{code, msg}` or `{message}` out of a provider's error body. */
function describeErrorBody(body: unknown): { code?: string; message?: string } {
  if (!body || typeof body !== 'object') return {};
  const b = body as Record<string, unknown>;
  const inner = b.error && typeof b.error === 'object' ? (b.error as Record<string, unknown>) : b;
  const code = inner.code ?? inner.type ?? inner.status;
  const message = inner.message ?? inner.msg ?? b.message ?? b.msg;
  return {
    ...(code !== undefined && code !== null ? { code: String(code) } : {}),
    ...(typeof message === 'string' ? { message } : {}),
  };
}

const defaultCodes: Record<number, string> = {
  400: 'invalid_request',
  401: 'invalid_api_key',
  402: 'insufficient_credits',
  403: 'ip_not_allowed',
  404: 'not_found',
  429: 'rate_limit_exceeded',
  500: 'internal_error',
  502: 'bad_gateway',
  503: 'upstream_error',
  504: 'gateway_timeout',
};

/** Classifies a non-2xx answer (SPEC "Provider errors"): only 429 and 5xx may be retried. */
export function classifyHttpFailure(status: number, body: unknown, retryAfter: string | null): ProviderFailure {
  const { code, message } = describeErrorBody(body);
  const retryAfterMs = parseRetryAfter(retryAfter);
  return {
    retryable: status === 429 || status >= 500,
    status,
    code: code && !/^\d+$/.test(code) ? code : (defaultCodes[status] ?? `http_${status}`),
    message: message ?? `provider answered HTTP ${status}`,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}

function classifyNetworkFailure(err: unknown, sent: boolean): ProviderFailure {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') {
    return { retryable: true, status: null, code: 'timeout', message: 'provider did not answer in time', ambiguous: sent };
  }
  const code = e.cause?.code ?? 'network_error';
  return {
    retryable: true,
    status: null,
    code: 'network_error',
    message: `${code}: ${e.cause?.message ?? e.message ?? 'request failed'}`,
    // Only a refused or unresolvable connection proves the request never left.
    ambiguous: !['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(code),
  };
}

async function readLimitedJson(res: Response): Promise<unknown> {
  const bytes = await readStreamLimited(res.body, MAX_PROVIDER_BODY, res.headers.get('content-length'));
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === '') return null;
  return JSON.parse(text);
}

/** One call to a provider with its key and timeout; resolves the parsed JSON of a 2xx, throws ProviderCallError otherwise. */
export async function callProvider(
  config: ProviderConfig,
  fetchFn: FetchFn,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<unknown> {
  const timeout = AbortSignal.timeout(config.timeout_s * 1000);
  let res: Response;
  try {
    res = await fetchFn(`${config.base_url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${config.api_key}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      redirect: 'error',
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  } catch (err) {
    throw new ProviderCallError(classifyNetworkFailure(err, true));
  }
  let parsed: unknown;
  try {
    parsed = await readLimitedJson(res);
  } catch (err) {
    if (!res.ok) parsed = null;
    else
      // The provider said yes but the rest of its answer was lost or unreadable: whatever was asked
      // may have been done, so this must never be taken as "safe to send again".
      throw new ProviderCallError({
        retryable: false,
        ambiguous: true,
        status: res.status,
        code: 'bad_response',
        message: `provider answered ${res.status} but its body could not be read: ${(err as Error).message}`,
      });
  }
  if (!res.ok) throw new ProviderCallError(classifyHttpFailure(res.status, parsed, res.headers.get('retry-after')));
  return parsed;
}
