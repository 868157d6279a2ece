import type { Db } from '../db/client.js';
import { AppError } from '../errors.js';
import type { Providers } from '../providers/index.js';
import type { ProviderAdapter } from '../providers/types.js';
import { getJob } from './queries.js';
import { adapterFor } from './adapter.js';

/** The relay's URL for a job's video when the provider serves it only with its key; undefined otherwise. */
export function relayContentUrl(adapter: ProviderAdapter, publicBaseUrl: string, jobId: string): string | undefined {
  return adapter.keyedContent ? `${publicBaseUrl}/v1/jobs/${encodeURIComponent(jobId)}/content` : undefined;
}

const PASSED_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'etag', 'last-modified'];

/**
 * Streams a job's video from a provider that serves it only with its key, so the key never leaves
 * the relay. A `Range` request is passed through, and so are 206 and 416 answers.
 */
export async function streamJobContent(ctx: { db: Db; providers: Providers }, jobId: string, range: string | undefined): Promise<Response> {
  const job = await getJob(ctx.db, jobId);
  const adapter = adapterFor(ctx.providers, job);
  if (!adapter.keyedContent || !adapter.contentPath) {
    throw new AppError('not_found', `provider "${job.provider}" serves videos directly: see the job's result.video_urls`);
  }
  if (job.status !== 'succeeded' || !job.providerTaskId) throw new AppError('conflict', `job ${job.id} has no video (status ${job.status})`);
  let res: Response;
  try {
    res = await fetch(`${adapter.config.base_url}${adapter.contentPath(job.providerTaskId)}`, {
      headers: { authorization: `Bearer ${adapter.config.api_key}`, ...(range ? { range } : {}) },
      signal: AbortSignal.timeout(adapter.config.timeout_s * 1000),
    });
  } catch (err) {
    throw new AppError('unavailable', `the provider could not be reached for the video: ${(err as Error).message}`);
  }
  if (res.status === 200 || res.status === 206 || res.status === 416) {
    const headers = new Headers();
    for (const name of PASSED_HEADERS) {
      const v = res.headers.get(name);
      if (v !== null) headers.set(name, v);
    }
    return new Response(res.body, { status: res.status, headers });
  }
  await res.body?.cancel();
  if (res.status === 404) throw new AppError('not_found', 'the provider no longer has this video');
  throw new AppError('unavailable', `the provider answered ${res.status} for the video`, { provider_status: res.status });
}
