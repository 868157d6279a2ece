import type { JobRow } from '../db/schema.js';

/** The job as the API and events show it (SPEC "The job"). */
export function jobView(job: JobRow) {
  return {
    id: job.id,
    provider: job.provider,
    model: job.model,
    provider_task_id: job.providerTaskId,
    status: job.status,
    progress: job.progress,
    input: job.input,
    result: job.result ?? null,
    error: job.error ?? null,
    metadata: job.metadata,
    notify_url: job.notifyUrl,
    created_at: job.createdAt.toISOString(),
    submitted_at: job.submittedAt?.toISOString() ?? null,
    updated_at: job.updatedAt.toISOString(),
    completed_at: job.completedAt?.toISOString() ?? null,
  };
}

export type JobView = ReturnType<typeof jobView>;
