import { describe, expect, it } from 'vitest';
import { createLogger, redactPath } from '../../src/ops/logger.js';
import { isSecretName, redactCallbackPath, redactSecrets, scrubText } from '../../src/ops/redact.js';

const JOB = 'job_01m80xe7523ejddf2vxv6nax2j';
const TOKEN = 'Zq3v_Tn8-Kp2Lm5Rx7Wc9Yb1Ds4Fg6Hj';

function captured() {
  const lines: string[] = [];
  const log = createLogger('trace', { write: (l: string) => void lines.push(l) });
  return { log, lines, text: () => lines.join('') };
}

describe('what counts as a secret', () => {
  it('credential-like names are secret; signature, id and timestamp headers are not', () => {
    for (const name of ['authorization', 'Proxy-Authorization', 'cookie', 'set-cookie', 'x-api-key', 'api_key', 'apiKey', 'webhook_secret', 'x-auth-token', 'password', 'key']) {
      expect(isSecretName(name), name).toBe(true);
    }
    for (const name of ['webhook-signature', 'webhook-id', 'webhook-timestamp', 'x-toapis-webhook-signature', 'x-task-id', 'x-event', 'content-type', 'user-agent', 'jobId', 'provider']) {
      expect(isSecretName(name), name).toBe(false);
    }
  });

  it('callback paths keep the provider and a job id, never the token, whatever follows it', () => {
    expect(redactCallbackPath(`/callbacks/veo/${TOKEN}`)).toBe('/callbacks/veo/[token]');
    expect(redactCallbackPath(`/callbacks/veo/${JOB}/${TOKEN}`)).toBe(`/callbacks/veo/${JOB}/[token]`);
    // Extra segments (a 404) must not shift the token into the "job id" slot or leave it last-but-one.
    expect(redactCallbackPath(`/callbacks/veo/${JOB}/${TOKEN}/extra`)).toBe(`/callbacks/veo/${JOB}/[token]`);
    expect(redactCallbackPath(`/callbacks/veo/${TOKEN}/extra`)).toBe('/callbacks/veo/[token]');
    expect(redactCallbackPath('/callbacks/veo')).toBe('/callbacks/veo');
    expect(redactPath('/v1/jobs/job_1')).toBe('/v1/jobs/job_1');
  });

  it('free text loses callback tokens and bearer credentials', () => {
    const text = `POST https://relay.example/callbacks/veo/${JOB}/${TOKEN}?x=1 failed; sent Authorization: Bearer sk-live-123, then bearer abc`;
    expect(scrubText(text)).toBe(
      `POST https://relay.example/callbacks/veo/${JOB}/[token]?x=1 failed; sent Authorization: Bearer [redacted], then bearer [redacted]`,
    );
    expect(scrubText('nothing to see')).toBe('nothing to see');
  });

  it('redactSecrets copies only what it changes and leaves the original alone', () => {
    const clean = { jobId: JOB, nested: { status: 'ok' }, list: [1, 'two'] };
    expect(redactSecrets(clean)).toBe(clean);
    const dirty = { provider: { name: 'veo', api_key: 'sk-1' }, list: [{ token: 't' }] };
    expect(redactSecrets(dirty)).toEqual({ provider: { name: 'veo', api_key: '[redacted]' }, list: [{ token: '[redacted]' }] });
    expect(dirty.provider.api_key).toBe('sk-1');
  });
});

describe('the logger', () => {
  it('redacts secret-named fields at any depth and keeps the rest', () => {
    const { log, lines } = captured();
    log.info(
      {
        jobId: JOB,
        headers: { authorization: 'Bearer sk-aaa', cookie: 'sid=bbb', 'x-api-key': 'ccc', 'content-type': 'application/json' },
        config: { providers: { veo: { base_url: 'https://api.example', api_key: 'ddd', webhook_secret: 'eee' } } },
        url: `https://relay.example/callbacks/veo/${TOKEN}`,
      },
      'something happened',
    );
    const line = JSON.parse(lines[0]!);
    expect(line.headers).toEqual({ authorization: '[redacted]', cookie: '[redacted]', 'x-api-key': '[redacted]', 'content-type': 'application/json' });
    expect(line.config.providers.veo).toEqual({ base_url: 'https://api.example', api_key: '[redacted]', webhook_secret: '[redacted]' });
    expect(line.url).toBe('https://relay.example/callbacks/veo/[token]');
    expect(line.jobId).toBe(JOB);
    for (const secret of ['sk-aaa', 'bbb', 'ccc', 'ddd', 'eee', TOKEN]) expect(lines[0]).not.toContain(secret);
  });

  it('scrubs errors: message, stack, secret-named properties and causes', () => {
    const { log, text } = captured();
    const cause = new Error(`connect failed for /callbacks/veo/${JOB}/${TOKEN}`);
    const err = Object.assign(new Error(`provider said: bad Authorization Bearer sk-live-999 for /callbacks/veo/${TOKEN}`, { cause }), {
      apiKey: 'sk-prop-888',
      detail: { secret: 'whsec_777' },
      code: 'E_TEST',
    });
    log.error({ err }, 'failed');
    const out = text();
    for (const secret of ['sk-live-999', 'sk-prop-888', 'whsec_777', TOKEN]) expect(out).not.toContain(secret);
    const line = JSON.parse(out);
    expect(line.err.code).toBe('E_TEST');
    expect(line.err.message).toContain('/callbacks/veo/[token]');
    // pino folds the cause into the message and stack; it is scrubbed there.
    expect(out).toContain(`/callbacks/veo/${JOB}/[token]`);
  });

  it('keeps bindings such as the request id', () => {
    const { log, lines } = captured();
    log.child({ request_id: 'r-1' }).warn({ token: 'x' }, 'w');
    expect(JSON.parse(lines[0]!)).toMatchObject({ request_id: 'r-1', token: '[redacted]', msg: 'w' });
  });
});
