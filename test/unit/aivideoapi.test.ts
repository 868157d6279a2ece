import { describe, expect, it } from 'vitest';
import { parseAivideoapiStatus, createAivideoapiAdapter } from '../../src/providers/aivideoapi.js';
import { parseFileConfig } from '../../src/config.js';
import { MalformedPayloadError } from '../../src/providers/types.js';

// The status documents exactly as seed 001 shows them.
const seedProcessing = `{
"id": "e717a5ee-2ed4-47f4-8cc3-53394f1abb35",
"status": "processing",
"model": "veo-3",
"created_at": 1774706165,
"progress": null
}`;
const seedCompleted = `{
"id": "7d89c51e-9430-410e-909e-df347131ebaa",
"status": "completed",
"model": "veo-3",
"created_at": 1774790227,
"completed_at": 1774796529,
"output": {
"urls": [
"https://file.aivideoapi.ai/videos/2026/04/02/abc123.mp4"
],
"metadata": {
"resolution": "720p"
}
}
}`;
const seedFailed = `{
"id": "57c8772c-f834-46f3-9b7d-81f92e104050",
"status": "failed",
"model": "veo-3",
"created_at": 1774793758,
"error": {
"code": "upstream_error",
"message": "Video generation failed"
}
}`;
const seedSubmitResponse = `{
"code": 200,
"msg": "success",
"data": {
"taskId": "cbf6b69d-4f03-4817-8ed7-94c0292184a8"
}
}`;

const adapter = createAivideoapiAdapter(
  { ...parseFileConfig('{"providers":{"a":{"kind":"aivideoapi","base_url":"http://x","api_key":"k"}}}', {}).providers.a!, name: 'a' },
  fetch,
);

describe('aivideoapi status and callback parsing (seed 001)', () => {
  it('processing → processing, no progress', () => {
    const obs = parseAivideoapiStatus(JSON.parse(seedProcessing));
    expect(obs).toMatchObject({ status: 'processing', progress: null });
  });

  it('completed → succeeded with output.urls', () => {
    const obs = parseAivideoapiStatus(JSON.parse(seedCompleted));
    expect(obs).toMatchObject({
      status: 'succeeded',
      videoUrls: ['https://file.aivideoapi.ai/videos/2026/04/02/abc123.mp4'],
    });
    expect(obs?.raw).toEqual(JSON.parse(seedCompleted));
  });

  it('failed → failed with the provider error', () => {
    expect(parseAivideoapiStatus(JSON.parse(seedFailed))).toMatchObject({
      status: 'failed',
      error: { code: 'upstream_error', message: 'Video generation failed', source: 'provider' },
    });
  });

  it('pending → submitted', () => {
    expect(parseAivideoapiStatus({ id: 't', status: 'pending' })?.status).toBe('submitted');
  });

  it('the same document inside the {code,msg,data} envelope parses the same', () => {
    const wrapped = { code: 200, msg: 'success', data: JSON.parse(seedCompleted) };
    expect(parseAivideoapiStatus(wrapped)).toMatchObject({ status: 'succeeded' });
  });

  it('a status the relay does not know changes nothing; a missing status is malformed', () => {
    expect(parseAivideoapiStatus({ id: 't', status: 'queued_for_review' })).toBeNull();
    expect(() => parseAivideoapiStatus({ id: 't' })).toThrow(MalformedPayloadError);
    expect(() => parseAivideoapiStatus(JSON.parse(seedSubmitResponse))).toThrow(MalformedPayloadError);
    expect(() => parseAivideoapiStatus([1])).toThrow(MalformedPayloadError);
  });

  it('a callback takes its task id from the body, or from X-Task-Id, and its status from X-Event if the body has none', () => {
    const body = JSON.parse(seedCompleted);
    const raw = new Uint8Array();
    expect(adapter.parseCallback({ headers: {}, raw, body }).taskId).toBe('7d89c51e-9430-410e-909e-df347131ebaa');
    const bare = { output: body.output };
    const parsed = adapter.parseCallback({ headers: { 'x-task-id': 'abc', 'x-event': 'task.completed' }, raw, body: bare });
    expect(parsed.taskId).toBe('abc');
    expect(parsed.observation?.status).toBe('succeeded');
    expect(() => adapter.parseCallback({ headers: { 'x-task-id': 'other' }, raw, body })).toThrow(/different tasks/);
  });
});
