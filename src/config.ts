import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** The provider kinds the relay has adapters for. */
export const providerKinds = ['aivideoapi', 'toapis', 'video-generations', 'openai-videos'] as const;
export type ProviderKind = (typeof providerKinds)[number];

/** Kinds that call back a `callback_url`; the others are polled. */
const callbackKinds: ReadonlySet<ProviderKind> = new Set(['aivideoapi', 'toapis']);
/** Kinds whose callbacks can be signed (with `webhook_secret`); openai-videos sends any only when one is set. */
const signingKinds: ReadonlySet<ProviderKind> = new Set(['toapis', 'openai-videos']);

const pollSchema = z
  .object({
    initial_delay_s: z.number().nonnegative().default(15),
    interval_s: z.number().positive().default(5),
    max_interval_s: z.number().positive().default(60),
    max_age_s: z.number().positive().default(7200),
    callback_grace_s: z.number().nonnegative().default(600),
  })
  .strict();

const rateLimitSchema = z
  .object({
    submit_per_min: z.number().int().positive().default(300),
    status_per_min: z.number().int().positive().default(3000),
  })
  .strict();

const providerSchema = z
  .object({
    kind: z.enum(providerKinds),
    base_url: z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, '')),
    api_key: z.string().min(1),
    callbacks: z.boolean().optional(),
    webhook_secret: z.string().min(1).nullable().default(null),
    verify_by_fetch: z.boolean().optional(),
    poll: pollSchema.default(pollSchema.parse({})),
    rate_limit: rateLimitSchema.default(rateLimitSchema.parse({})),
    timeout_s: z.number().positive().max(600).default(30),
  })
  .strict()
  .transform((p) => {
    const signed = signingKinds.has(p.kind) && p.webhook_secret !== null;
    return {
      ...p,
      callbacks: p.callbacks ?? (callbackKinds.has(p.kind) || signed),
      // A callback the relay cannot check by signature is confirmed with the provider before it counts.
      verify_by_fetch: p.verify_by_fetch ?? !signed,
    };
  });

const deliverySchema = z
  .object({
    retry_schedule_s: z
      .array(z.number().nonnegative())
      .min(1)
      .default([0, 5, 300, 1800, 7200, 18000, 36000, 36000]),
    timeout_s: z.number().positive().max(120).default(15),
    allow_private_targets: z.boolean().default(false),
    /** A subscription failing without a single success for this long is disabled (default 5 days). */
    disable_after_s: z.number().positive().default(5 * 24 * 3600),
  })
  .strict();

const days = z.number().positive().nullable();
const retentionSchema = z
  .object({
    /** Stored callbacks (accepted ones; rejected samples are capped by count anyway). null = keep forever. */
    receipts_days: days.default(30),
    /** Finished deliveries (delivered or dead) with their attempts. */
    deliveries_days: days.default(30),
    /** Events of jobs that are final, once none of their deliveries is pending. */
    events_days: days.default(90),
  })
  .strict();

const providerName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'provider names are 1–63 of a-z, 0-9, "-" and "_"');

export const fileConfigSchema = z
  .object({
    providers: z.record(providerName, providerSchema).default({}),
    delivery: deliverySchema.default(deliverySchema.parse({})),
    retention: retentionSchema.default(retentionSchema.parse({})),
  })
  .strict();

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
    .optional(),
  DATA_DIR: z.string().min(1).default('./.relay-data'),
  PUBLIC_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  RELAY_CONFIG: z.string().min(1).optional(),
  RELAY_ADMIN_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  RELAY_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  LOG_LEVEL: z.enum(logLevels).default('info'),
  // At least 2: migrations hold one connection for their advisory lock while running on another.
  DATABASE_POOL_MAX: z.coerce.number().int().min(2).max(100).default(10),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
});

export type ProviderConfig = z.output<typeof providerSchema> & { name: string };
export type DeliveryConfig = z.output<typeof deliverySchema>;
export type RetentionConfig = z.output<typeof retentionSchema>;

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  publicBaseUrl: string;
  adminKey: string | undefined;
  secret: string | undefined;
  logLevel: (typeof logLevels)[number];
  /** postgres.js pool size (LISTEN takes one more connection of its own); unset = 10. */
  databasePoolMax?: number;
  /** When set, `GET /metrics` needs `Authorization: Bearer <token>`. */
  metricsToken?: string | undefined;
  providers: Map<string, ProviderConfig>;
  delivery: DeliveryConfig;
  /** How long stored history is kept; absent = the defaults. */
  retention?: RetentionConfig;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function describeIssues(prefix: string, error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.map(String).join('.');
      // A bad record key carries its reason one level down.
      const message = i.code === 'invalid_key' ? `invalid name: ${i.issues.map((n) => n.message).join('; ')}` : i.message;
      return `${prefix}${path ? `${prefix ? '.' : ''}${path}` : ''}: ${message}`;
    })
    .join('\n');
}

/** Replaces `${NAME}` with the environment variable NAME; a missing variable is an error. */
export function interpolateEnv(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const value = env[name];
    if (value === undefined) throw new ConfigError(`RELAY_CONFIG refers to \${${name}}, which is not set`);
    return value;
  });
}

export function parseFileConfig(text: string, env: NodeJS.ProcessEnv, source = 'RELAY_CONFIG') {
  let json: unknown;
  try {
    json = JSON.parse(interpolateEnv(text, env));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = fileConfigSchema.safeParse(json);
  if (!parsed.success) throw new ConfigError(`${source} is invalid:\n${describeIssues('', parsed.error)}`);
  return parsed.data;
}

/** Reads env vars and the RELAY_CONFIG file into one validated Config, or throws a ConfigError naming the bad value. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const emptyAsUnset = Object.fromEntries(
    Object.keys(envSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]),
  );
  const parsed = envSchema.safeParse(emptyAsUnset);
  if (!parsed.success) throw new ConfigError(`invalid environment:\n${describeIssues('', parsed.error)}`);
  const e = parsed.data;

  let file = fileConfigSchema.parse({});
  if (e.RELAY_CONFIG) {
    let text: string;
    try {
      text = readFileSync(e.RELAY_CONFIG, 'utf8');
    } catch (err) {
      throw new ConfigError(`RELAY_CONFIG: cannot read ${e.RELAY_CONFIG}: ${(err as Error).message}`);
    }
    file = parseFileConfig(text, env, `RELAY_CONFIG (${e.RELAY_CONFIG})`);
  }

  const providers = new Map<string, ProviderConfig>();
  for (const [name, p] of Object.entries(file.providers)) providers.set(name, { ...p, name });

  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    publicBaseUrl: (e.PUBLIC_BASE_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    adminKey: e.RELAY_ADMIN_KEY,
    secret: e.RELAY_SECRET,
    logLevel: e.LOG_LEVEL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    metricsToken: e.METRICS_TOKEN,
    providers,
    delivery: file.delivery,
    retention: file.retention,
  };
}

/** The retention a Config asks for, with the defaults where it says nothing. */
export function retentionOf(config: Pick<Config, 'retention'>): RetentionConfig {
  return config.retention ?? fileConfigSchema.parse({}).retention;
}
