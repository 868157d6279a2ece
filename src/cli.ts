import { parseArgs } from 'node:util';
import { Delivery, deliveryView } from './api/deliveries.js';
import { eventView } from './api/jobs.js';
import { apiKeyView } from './api/keys.js';
import { subscriptionView } from './api/subscriptions.js';
import { createApiKey, listApiKeys, revokeApiKey, type Scope, scopes } from './auth/keys.js';
import { type Column, formatRecord, formatTable, shortTime } from './cli/table.js';
import { ConfigError, loadConfig } from './config.js';
import { openDatabase, type Database, type Db } from './db/client.js';
import { DataDirLockedError } from './db/lock.js';
import { migrate } from './db/migrate.js';
import type { Notifier } from './db/notify.js';
import type { DeliveryStatus, JobStatus } from './db/schema.js';
import { AppError } from './errors.js';
import { listDeliveries, retryDelivery } from './fanout/deliveries.js';
import { listSubscriptions } from './fanout/subscriptions.js';
import { listJobs } from './jobs/list.js';
import { getJob, listJobEvents } from './jobs/queries.js';
import { jobStatuses } from './jobs/states.js';
import { type JobView, jobView } from './jobs/view.js';

/** From the API's schema, so the CLI accepts exactly what `GET /v1/deliveries?status=` does. */
const deliveryStatuses = Delivery.shape.status.options;

const usage = `usage: npm run cli -- <command> [--json]

  keys create --name NAME --scopes SCOPE[,SCOPE…]   create an API key (printed once)
  keys list                                         list keys (never their secrets)
  keys revoke KEY_ID                                revoke a key
  jobs get JOB_ID                                   one job, with its events
  jobs list [--status S[,S…]] [--provider P] [--metadata KEY=VALUE]… [--limit N] [--cursor C]
                                                    jobs, newest first
  subscriptions list [--limit N] [--cursor C]       webhook subscriptions, newest first
  deliveries list [--subscription SUB_ID] [--job JOB_ID] [--status S[,S…]] [--limit N] [--cursor C]
                                                    webhook deliveries, newest first
  deliveries retry DELIVERY_ID                      send a delivery again: pending and due now; refused
                                                    while it is being sent or its subscription is
                                                    disabled. A running relay on PostgreSQL is woken
                                                    at once (NOTIFY); on PGlite the relay sends it
                                                    when it starts again
  migrate                                           apply database migrations

scopes: ${scopes.join(', ')}
job statuses: ${jobStatuses.join(', ')}
delivery statuses: ${deliveryStatuses.join(', ')}
--json   machine-readable output (the API's JSON shapes) instead of tables
exit codes: 0 done, 1 not found or failed, 2 bad usage
The CLI uses the same DATABASE_URL / DATA_DIR as the service. On PGlite, stop the service first:
one process owns a data directory.`;

class UsageError extends Error {}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        scopes: { type: 'string' },
        status: { type: 'string' },
        provider: { type: 'string' },
        subscription: { type: 'string' },
        job: { type: 'string' },
        metadata: { type: 'string', multiple: true },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    // An unknown option or a missing value: node:util says which.
    throw new UsageError((err as Error).message);
  }
}

interface CommandContext {
  db: Db;
  /** Wakes delivery workers: on PostgreSQL a real NOTIFY, so a running relay hears it. */
  notifier: Notifier;
  options: ReturnType<typeof parse>['values'];
  /** The positional arguments after the command's name. */
  args: string[];
  /** Prints `data` as JSON with --json, `human` otherwise. */
  out(human: string, data: unknown): void;
}

type Command = (ctx: CommandContext) => Promise<void>;

// The tables each resource prints as. A new resource is a column list here and a command below.

const jobColumns: Column<JobView>[] = [
  { heading: 'ID', cell: (j) => j.id },
  { heading: 'STATUS', cell: (j) => j.status },
  { heading: 'PROVIDER', cell: (j) => j.provider },
  { heading: 'MODEL', cell: (j) => j.model },
  { heading: 'CREATED', cell: (j) => shortTime(j.created_at) },
  { heading: 'ERROR', cell: (j) => j.error?.code },
];

const eventColumns: Column<ReturnType<typeof eventView>>[] = [
  { heading: 'SEQ', cell: (e) => e.sequence },
  { heading: 'EVENT', cell: (e) => e.type },
  { heading: 'AT', cell: (e) => shortTime(e.created_at) },
];

const keyColumns: Column<ReturnType<typeof apiKeyView>>[] = [
  { heading: 'ID', cell: (k) => k.id },
  { heading: 'PREFIX', cell: (k) => `${k.prefix}…` },
  { heading: 'NAME', cell: (k) => k.name, max: 40 },
  { heading: 'SCOPES', cell: (k) => k.scopes.join(',') },
  { heading: 'CREATED', cell: (k) => shortTime(k.created_at) },
  { heading: 'LAST USED', cell: (k) => shortTime(k.last_used_at) },
  { heading: 'REVOKED', cell: (k) => shortTime(k.revoked_at) },
];

const subscriptionColumns: Column<ReturnType<typeof subscriptionView>>[] = [
  { heading: 'ID', cell: (s) => s.id },
  { heading: 'URL', cell: (s) => s.url, max: 50 },
  { heading: 'STATE', cell: (s) => (s.enabled ? 'enabled' : `disabled (${s.disabled_reason})`) },
  { heading: 'EVENTS', cell: (s) => s.event_types.join(','), max: 60 },
  { heading: 'CREATED', cell: (s) => shortTime(s.created_at) },
];

const deliveryColumns: Column<ReturnType<typeof deliveryView>>[] = [
  { heading: 'ID', cell: (d) => d.id },
  { heading: 'STATUS', cell: (d) => d.status },
  { heading: 'EVENT', cell: (d) => d.event_type },
  { heading: 'JOB', cell: (d) => d.job_id },
  { heading: 'TARGET', cell: (d) => d.subscription_id ?? d.notify_url, max: 40 },
  { heading: 'ATTEMPTS', cell: (d) => d.attempts },
  { heading: 'LAST', cell: (d) => d.last_status_code ?? d.last_error, max: 40 },
  { heading: 'NEXT', cell: (d) => shortTime(d.next_attempt_at) },
  { heading: 'CREATED', cell: (d) => shortTime(d.created_at) },
];

function parseScopes(value: string | undefined): Scope[] {
  if (!value) throw new UsageError('--scopes is required');
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((s) => !(scopes as readonly string[]).includes(s));
  if (bad.length || !list.length) throw new UsageError(`unknown scope(s): ${bad.join(', ') || '(none)'}; valid: ${scopes.join(', ')}`);
  return list as Scope[];
}

/** A `--status S[,S…]` whose every status is one of `valid`. */
function parseStatuses<T extends string>(value: string | undefined, valid: readonly T[]): T[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((s) => !(valid as readonly string[]).includes(s));
  if (bad.length || !list.length) throw new UsageError(`unknown status(es): ${bad.join(', ') || '(none)'}; valid: ${valid.join(', ')}`);
  return list as T[];
}

function parseMetadata(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs?.length) return undefined;
  const metadata: Record<string, string> = Object.create(null);
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at < 1) throw new UsageError(`--metadata takes KEY=VALUE, not "${pair}"`);
    metadata[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return metadata;
}

function parseLimit(value: string | undefined): number {
  const limit = value === undefined ? 50 : Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new UsageError('--limit must be a whole number, 1–200');
  return limit;
}

function onlyArg(args: string[], what: string): string {
  if (args.length !== 1) throw new UsageError(`give exactly one ${what}`);
  return args[0]!;
}

const commands: Record<string, Command> = {
  async migrate({ out }) {
    // Migrations ran when the database was opened.
    out('migrations applied', { ok: true });
  },

  async 'keys create'({ db, options, out }) {
    if (!options.name) throw new UsageError('--name is required');
    const { key, row } = await createApiKey(db, { name: options.name, scopes: parseScopes(options.scopes) });
    const { id, name, prefix, scopes: granted, created_at } = apiKeyView(row);
    // The same fields as POST /v1/keys answers.
    out(`created ${id} (${name}; ${granted.join(', ')})\n\n    ${key}\n\nThis key is shown once.`, { id, name, prefix, scopes: granted, created_at, key });
  },

  async 'keys list'({ db, out }) {
    const data = (await listApiKeys(db)).map(apiKeyView);
    out(data.length ? formatTable(keyColumns, data) : 'no keys', data);
  },

  async 'keys revoke'({ db, args, out }) {
    const row = await revokeApiKey(db, onlyArg(args, 'key id'));
    out(`revoked ${row.id}`, apiKeyView(row));
  },

  async 'jobs get'({ db, args, out }) {
    const id = onlyArg(args, 'job id');
    const job = jobView(await getJob(db, id));
    const events = (await listJobEvents(db, id, 500)).data.map(eventView);
    const human = formatRecord([
      ['id', job.id],
      ['status', job.progress !== null && job.status === 'processing' ? `${job.status} (${job.progress}%)` : job.status],
      ['provider', job.provider],
      ['model', job.model],
      ['task', job.provider_task_id],
      ['created', shortTime(job.created_at)],
      ['submitted', shortTime(job.submitted_at)],
      ['completed', shortTime(job.completed_at)],
      ['metadata', Object.entries(job.metadata).map(([k, v]) => `${k}=${v}`).join(' ')],
      ['notify', job.notify_url],
      ['error', job.error ? `${job.error.code} (${job.error.source}): ${job.error.message}` : null],
      ['videos', job.result?.video_urls.join(' ')],
    ]);
    out(`${human}\n\n${events.length ? formatTable(eventColumns, events) : 'no events'}`, { ...job, events });
  },

  async 'jobs list'({ db, args, options, out }) {
    if (args.length) throw new UsageError(`jobs list takes no arguments (got ${args.join(' ')})`);
    const page = await listJobs(db, {
      statuses: parseStatuses<JobStatus>(options.status, jobStatuses),
      provider: options.provider,
      metadata: parseMetadata(options.metadata),
      limit: parseLimit(options.limit),
      cursor: options.cursor,
    });
    const rows = page.data.map(jobView);
    const more = page.next_cursor ? `\n\nmore: --cursor ${page.next_cursor}` : '';
    out(rows.length ? `${formatTable(jobColumns, rows)}${more}` : 'no jobs', { data: rows, next_cursor: page.next_cursor });
  },

  async 'subscriptions list'({ db, args, options, out }) {
    if (args.length) throw new UsageError(`subscriptions list takes no arguments (got ${args.join(' ')})`);
    const page = await listSubscriptions(db, parseLimit(options.limit), options.cursor);
    // The view has no secret, as GET /v1/subscriptions.
    const rows = page.data.map(subscriptionView);
    const more = page.next_cursor ? `\n\nmore: --cursor ${page.next_cursor}` : '';
    out(rows.length ? `${formatTable(subscriptionColumns, rows)}${more}` : 'no subscriptions', { data: rows, next_cursor: page.next_cursor });
  },

  async 'deliveries list'({ db, args, options, out }) {
    if (args.length) throw new UsageError(`deliveries list takes no arguments (got ${args.join(' ')})`);
    const page = await listDeliveries(db, {
      subscriptionId: options.subscription,
      jobId: options.job,
      statuses: parseStatuses<DeliveryStatus>(options.status, deliveryStatuses),
      limit: parseLimit(options.limit),
      cursor: options.cursor,
    });
    const rows = page.data.map(deliveryView);
    const more = page.next_cursor ? `\n\nmore: --cursor ${page.next_cursor}` : '';
    out(rows.length ? `${formatTable(deliveryColumns, rows)}${more}` : 'no deliveries', { data: rows, next_cursor: page.next_cursor });
  },

  async 'deliveries retry'({ db, notifier, args, out }) {
    const row = deliveryView(await retryDelivery({ db, notifier }, onlyArg(args, 'delivery id')));
    out(`queued ${row.id} again: ${row.status}, due now`, row);
  },
};

/** The command the positionals name (`migrate`, or a group and an action), and what follows it. */
function findCommand(positionals: string[]): { command: Command; args: string[] } {
  const [first, second] = positionals;
  const two = `${first} ${second}`;
  if (second !== undefined && Object.hasOwn(commands, two)) return { command: commands[two]!, args: positionals.slice(2) };
  if (first !== undefined && Object.hasOwn(commands, first)) return { command: commands[first]!, args: positionals.slice(1) };
  throw new UsageError(`unknown command: ${positionals.join(' ')}`);
}

async function run(argv: string[]): Promise<number> {
  const { values: options, positionals } = parse(argv);
  if (options.help || !positionals.length) {
    process.stdout.write(`${usage}\n`);
    return options.help ? 0 : 2;
  }
  // Known before the database is opened, so a typo does not wait for it.
  const { command, args } = findCommand(positionals);
  const out = (human: string, data: unknown) => process.stdout.write(options.json ? `${JSON.stringify(data)}\n` : `${human}\n`);

  const config = loadConfig();
  const database: Database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(database);
    await command({ db: database.db, notifier: database.notifier, options, args, out });
    return 0;
  } finally {
    await database.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    // A bad argument the database layer caught (a cursor that is not one, say) is bad usage too.
    const usageError = err instanceof UsageError || (err instanceof AppError && err.code === 'invalid_request');
    if (err instanceof UsageError) process.stderr.write(`${err.message}\n(npm run cli -- --help lists the commands)\n`);
    // Expected failures (not found, bad configuration, a data directory in use) are one line, exit 1.
    else if (err instanceof AppError || err instanceof ConfigError || err instanceof DataDirLockedError) process.stderr.write(`${err.message}\n`);
    else process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(usageError ? 2 : 1);
  },
);
