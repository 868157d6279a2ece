import type { JobRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Providers } from '../providers/index.js';
import type { ProviderAdapter, ProviderCallError } from '../providers/types.js';

export function adapterFor(providers: Providers, job: JobRow): ProviderAdapter {
  const adapter = providers.get(job.provider);
  if (!adapter) throw new AppError('conflict', `provider "${job.provider}" of job ${job.id} is no longer configured`);
  return adapter;
}

export function providerUnavailable(err: ProviderCallError): AppError {
  const f = err.failure;
  return new AppError('unavailable', `the provider did not answer usefully: ${f.code}: ${f.message}`, {
    provider_status: f.status,
    provider_code: f.code,
    retryable: f.retryable,
  });
}
