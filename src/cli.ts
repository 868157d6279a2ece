import { parseArgs } from 'node:util';
import { createApiKey, listApiKeys, revokeApiKey, type Scope, scopes } from './auth/keys.js';
import { ConfigError, loadConfig } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { DataDirLockedError } from './db/lock.js';
import { migrate } from './db/migrate.js';
import type { JobStatus } from './db/schema.js';
import { AppError } from './errors.js';
import { listJobs } from './jobs/list.js';
import { getJob, listJobEvents } from './jobs/queries.js';
import { jobView } from './jobs/view.js';

const usage = `usage: npm run cli -- <command>

  keys create --name NAME --scopes SCOPE[,SCOPE…]   create an API key (printed once)
  keys list                                         list keys (never their secrets)
  keys revoke KEY_ID                                revoke a key
  jobs get JOB_ID                                   one job, with its events
  jobs list [--status S[,S…]] [--provider P] [--limit N] [--cursor C]
                                                    jobs, newest first
  migrate                                           apply database migrations

scopes: ${scopes.join(', ')}
options: --json  machine-readable output
The CLI uses the same DATABASE_URL / DATA_DIR as the service. On PGlite, stop the service first:
one process owns a data directory.`;

class UsageError extends Error {}

function parseScopes(value: string | undefined): Scope[] {
  if (!value) throw new UsageError('--scopes is required');
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((s) => !(scopes as readonly string[]).includes(s));
  if (bad.length || !list.length) throw new UsageError(`unknown scope(s): ${bad.join(', ') || '(none)'}; valid: ${scopes.join(', ')}`);
  return list as Scope[];
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      scopes: { type: 'string' },
      status: { type: 'string' },
      provider: { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [group, action, arg] = positionals;
  if (values.help || !group) {
    process.stdout.write(`${usage}\n`);
    return values.help ? 0 : 2;
  }
  const out = (human: string, data: unknown) => process.stdout.write(values.json ? `${JSON.stringify(data)}\n` : `${human}\n`);

  const config = loadConfig();
  const database: Database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(database);
    const db = database.db;
    if (group === 'migrate') {
      out('migrations applied', { ok: true });
      return 0;
    }
    if (group === 'keys' && action === 'create') {
      if (!values.name) throw new UsageError('--name is required');
      const { key, row } = await createApiKey(db, { name: values.name, scopes: parseScopes(values.scopes) });
      out(`created ${row.id} (${row.name}; ${row.scopes.join(', ')})\n\n    ${key}\n\nThis key is shown once.`, {
        id: row.id,
        name: row.name,
        scopes: row.scopes,
        key,
      });
      return 0;
    }
    if (group === 'keys' && action === 'list') {
      const rows = await listApiKeys(db);
      const data = rows.map((r) => ({
        id: r.id,
        name: r.name,
        prefix: r.prefix,
        scopes: r.scopes,
        created_at: r.createdAt.toISOString(),
        revoked_at: r.revokedAt?.toISOString() ?? null,
      }));
      const lines = data.map((r) => `${r.id}  ${r.prefix}…  ${r.name}  [${r.scopes.join(',')}]${r.revoked_at ? '  revoked' : ''}`);
      out(lines.join('\n') || 'no keys', data);
      return 0;
    }
    if (group === 'keys' && action === 'revoke') {
      if (!arg) throw new UsageError('keys revoke needs a key id');
      const row = await revokeApiKey(db, arg);
      out(`revoked ${row.id}`, { id: row.id, revoked: true });
      return 0;
    }
    if (group === 'jobs' && action === 'get') {
      if (!arg) throw new UsageError('jobs get needs a job id');
      const job = jobView(await getJob(db, arg));
      const events = (await listJobEvents(db, arg, 500)).data.map((e) => `  ${e.sequence}. ${e.type}  ${e.createdAt.toISOString()}`);
      out(
        [
          `${job.id}  ${job.status}  ${job.provider}${job.model ? ` (${job.model})` : ''}  task ${job.provider_task_id ?? '—'}`,
          job.error ? `error: ${job.error.code}: ${job.error.message}` : '',
          job.result ? `videos: ${job.result.video_urls.join(' ')}` : '',
          'events:',
          ...events,
        ]
          .filter(Boolean)
          .join('\n'),
        job,
      );
      return 0;
    }
    if (group === 'jobs' && action === 'list') {
      const limit = values.limit ? Number(values.limit) : 50;
      if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new UsageError('--limit must be 1–200');
      const page = await listJobs(db, {
        statuses: values.status?.split(',').filter(Boolean) as JobStatus[] | undefined,
        provider: values.provider,
        limit,
        cursor: values.cursor,
      });
      const rows = page.data.map(jobView);
      const lines = rows.map((j) => `${j.id}  ${j.status.padEnd(10)}  ${j.provider}  ${j.created_at}`);
      if (page.next_cursor) lines.push(`more: --cursor ${page.next_cursor}`);
      out(lines.join('\n') || 'no jobs', { data: rows, next_cursor: page.next_cursor });
      return 0;
    }
    throw new UsageError(`unknown command: ${positionals.join(' ')}`);
  } finally {
    await database.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError) process.stderr.write(`${err.message}\n\n${usage}\n`);
    // Expected failures (not found, bad configuration, a data directory in use) are one line, exit 1.
    else if (err instanceof AppError || err instanceof ConfigError || err instanceof DataDirLockedError) process.stderr.write(`${err.message}\n`);
    else process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
