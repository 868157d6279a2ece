import { z } from '@hono/zod-openapi';

/** An image: an http(s) URL, or (where the provider takes them) base64 or a data URI. */
const Image = z.string().min(1).max(4 * 1024 * 1024);

export const MetadataSchema = z
  .record(z.string().min(1).max(100), z.string().max(1000))
  .refine((m) => Object.keys(m).length <= 50, 'at most 50 metadata keys')
  .openapi({ example: { order_id: 'A-17' } });

/** The provider-neutral job request of `POST /v1/jobs` (SPEC "Normalised job request"). */
export const JobRequestSchema = z
  .object({
    provider: z.string().min(1).max(63),
    model: z.string().min(1).max(200).optional(),
    prompt: z.string().min(1).max(20_000).optional(),
    images: z.array(Image).max(10).optional(),
    reference_images: z.array(Image).max(10).optional(),
    duration: z.number().int().positive().max(600).optional(),
    aspect_ratio: z.string().min(1).max(20).optional(),
    resolution: z.string().min(1).max(20).optional(),
    negative_prompt: z.string().max(5000).optional(),
    seed: z.number().int().optional(),
    audio: z.boolean().optional(),
    provider_options: z.record(z.string(), z.unknown()).optional(),
    metadata: MetadataSchema.optional(),
    notify_url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  })
  .strict()
  .openapi('JobRequest');

export type JobRequest = z.output<typeof JobRequestSchema>;

/** One broken request rule: which field, which documented rule, and what to do about it. */
export interface RuleViolation {
  field: string;
  /** A stable name for the rule, e.g. `toapis.gemini_omni.duration`. */
  rule: string;
  message: string;
}
