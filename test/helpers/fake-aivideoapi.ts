import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback stand-in for aivideoapi's status endpoint (seed 001): `GET /v1/tasks/{id}` answers
 * whatever document the test set for that task, 404 `task_not_found` otherwise.
 */
export interface FakeAivideoapi {
  baseUrl: string;
  apiKey: string;
  tasks: Map<string, Record<string, unknown>>;
  /** When set, every status request answers this HTTP status with an error body. */
  failWith: number | null;
  requests: { method: string; path: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

export async function startFakeAivideoapi(): Promise<FakeAivideoapi> {
  const fake: FakeAivideoapi = {
    baseUrl: '',
    apiKey: 'sk-test-key',
    tasks: new Map(),
    failWith: null,
    requests: [],
    close: async () => {},
  };
  const send = (res: import('node:http').ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const server: Server = createServer((req: IncomingMessage, res) => {
    fake.requests.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
    if (req.headers.authorization !== `Bearer ${fake.apiKey}`) {
      return send(res, 401, { error: { code: 'invalid_api_key', message: 'bad key', type: 'authentication_error' } });
    }
    if (fake.failWith) {
      return send(res, fake.failWith, { error: { code: 'internal_error', message: 'boom', type: 'api_error' } });
    }
    const m = /^\/v1\/tasks\/([^/?]+)$/.exec(req.url ?? '');
    const task = m ? fake.tasks.get(decodeURIComponent(m[1]!)) : undefined;
    if (!task) return send(res, 404, { error: { code: 'task_not_found', message: 'no such task', type: 'invalid_request_error' } });
    send(res, 200, task);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}

/** The seed's documents for a task in each state, with the given id. */
export const aivideoapiDocs = {
  processing: (id: string) => ({ id, status: 'processing', model: 'veo-3', created_at: 1774706165, progress: null }),
  completed: (id: string, url = 'https://file.aivideoapi.ai/videos/2026/04/02/abc123.mp4') => ({
    id,
    status: 'completed',
    model: 'veo-3',
    created_at: 1774790227,
    completed_at: 1774796529,
    output: { urls: [url], metadata: { resolution: '720p' } },
  }),
  failed: (id: string) => ({
    id,
    status: 'failed',
    model: 'veo-3',
    created_at: 1774793758,
    error: { code: 'upstream_error', message: 'Video generation failed' },
  }),
};
