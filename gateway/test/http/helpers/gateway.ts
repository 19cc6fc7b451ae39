// Starts the gateway on a free port around a backend, with the official OpenAI client pointed at it.
import type { ExecutionContext } from 'ava';
import OpenAI from 'openai';
import { pino } from 'pino';
import { startGateway, type GenerationBackend, type RunningGateway } from '../../../src/index.js';
import { MODEL_ID, model } from './fixture.js';

export interface TestGateway {
  readonly gw: RunningGateway;
  readonly client: OpenAI;
  /** `${url}/v1` */
  readonly base: string;
}

export async function startTestGateway(t: ExecutionContext, backend: GenerationBackend): Promise<TestGateway> {
  const gw = await startGateway({ model: model(), servedModelName: MODEL_ID, backend, logger: pino({ level: 'silent' }) });
  t.teardown(() => gw.close());
  const base = `${gw.url}/v1`;
  // No retries: a 429 must reach the test as it was sent.
  return { gw, base, client: new OpenAI({ baseURL: base, apiKey: 'test', maxRetries: 0 }) };
}

/** POSTs a raw body (possibly malformed) and returns status, headers and parsed JSON. */
export async function postRaw(base: string, path: string, body: string): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/** The SSE body of a streamed request, split into frames; throws if the framing is not `data: …\n\n`. */
export async function postSse(base: string, path: string, body: object): Promise<{ status: number; contentType: string | null; frames: string[] }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!text.endsWith('\n\n')) throw new Error(`SSE body does not end with a blank line: ${JSON.stringify(text.slice(-40))}`);
  const frames = text.slice(0, -2).split('\n\n');
  for (const f of frames) if (!f.startsWith('data: ') || f.includes('\n')) throw new Error(`bad SSE frame ${JSON.stringify(f)}`);
  return { status: res.status, contentType: res.headers.get('content-type'), frames: frames.map((f) => f.slice('data: '.length)) };
}
