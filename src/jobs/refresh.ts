import type { Db } from '../db/client.js';
import type { JobRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Providers } from '../providers/index.js';
import { ProviderCallError } from '../providers/types.js';
import { adapterFor, providerUnavailable } from './adapter.js';
import { relayContentUrl } from './content.js';
import { getJob } from './queries.js';
import { applyObservation } from './transition.js';

export interface RefreshContext {
  db: Db;
  providers: Providers;
  publicBaseUrl: string;
}

/** Asks the provider for the job's status now and applies the answer through the one transition. */
export async function refreshJob(ctx: RefreshContext, jobId: string): Promise<JobRow> {
  const job = await getJob(ctx.db, jobId);
  if (!job.providerTaskId) throw new AppError('conflict', `job ${job.id} is not at the provider yet (status ${job.status})`);
  const adapter = adapterFor(ctx.providers, job);
  let observation;
  try {
    observation = await adapter.fetchStatus(job.providerTaskId);
  } catch (err) {
    if (err instanceof ProviderCallError) throw providerUnavailable(err);
    throw err;
  }
  if (!observation) return job;
  const obs = observation;
  const { job: after } = await ctx.db.transaction((tx) =>
    applyObservation(tx, job.id, obs, { contentUrl: relayContentUrl(adapter, ctx.publicBaseUrl, job.id) }),
  );
  return after;
}
