// Backend rejections, backend failures and client disconnects, as HTTP statuses, stream errors and
// aborted backend signals.
import test from 'ava';
import OpenAI from 'openai';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendRejection } from '../../src/index.js';
import { EOS, MODEL_ID, REFERENCE } from './helpers/fixture.js';
import { postRaw, postSse, startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const reply = [...REFERENCE[0]!.greedy_ids, EOS];
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Hi' }];

test('backend - a 429 rejection is a 429 with Retry-After, streamed or not', async (t) => {
  const backend = new ReplayBackend({ script: () => reply, reject: new BackendRejection(429, 'all decode nodes are full', 'rate_limit_exceeded', 7) });
  const { client, base } = await startTestGateway(t, backend);
  for (const stream of [false, true]) {
    const err = await t.throwsAsync(client.chat.completions.create({ model: MODEL_ID, messages, stream }), { instanceOf: OpenAI.RateLimitError });
    t.is(err!.status, 429);
    t.is(err!.headers?.get('retry-after'), '7');
    t.like(err!.error, { message: 'all decode nodes are full', code: 'rate_limit_exceeded', type: 'invalid_request_error' });
  }
  const raw = await postRaw(base, '/completions', JSON.stringify({ model: MODEL_ID, prompt: 'Hi', stream: true }));
  t.is(raw.status, 429);
  t.is(raw.headers.get('content-type'), 'application/json; charset=utf-8');
});

test('backend - a 503 rejection is a 503 with its code', async (t) => {
  const backend = new ReplayBackend({ script: () => reply, reject: new BackendRejection(503, 'no decode node serves this model', 'no_capacity') });
  const { client } = await startTestGateway(t, backend);
  const err = await t.throwsAsync(client.completions.create({ model: MODEL_ID, prompt: 'Hi' }), { instanceOf: OpenAI.InternalServerError });
  t.is(err!.status, 503);
  t.like(err!.error, { code: 'no_capacity', type: 'server_error' });
  t.is(err!.headers?.get('retry-after'), null);
});

test('backend - an unexpected error is a 500 with an OpenAI body, and the server keeps serving', async (t) => {
  const backend = new ReplayBackend({ script: () => reply, fail: new Error('NATS connection lost: secret-host:4222') });
  const { base } = await startTestGateway(t, backend);
  for (let i = 0; i < 2; i++) {
    const r = await postRaw(base, '/chat/completions', JSON.stringify({ model: MODEL_ID, messages }));
    t.is(r.status, 500);
    t.like(r.json.error, { type: 'server_error', param: null, code: null });
    t.notRegex(r.json.error.message, /secret-host/); // internals stay in the log
    t.regex(r.json.error.message, new RegExp(r.headers.get('x-request-id')!));
  }
  const health = await fetch(`${base.slice(0, -3)}/health`);
  t.is(health.status, 200);
});

test('backend - a failure mid-stream becomes an error chunk the client raises, then [DONE]', async (t) => {
  const backend = new ReplayBackend({ script: () => reply, fail: new Error('decode node died'), failAfterEvents: 3 });
  const { client, base } = await startTestGateway(t, backend);
  const stream = await client.chat.completions.create({ model: MODEL_ID, messages, stream: true });
  let received = 0;
  await t.throwsAsync(
    (async () => {
      for await (const _ of stream) received++;
    })(),
    { instanceOf: OpenAI.APIError, message: /server had an error/ },
  );
  t.true(received >= 1);
  const { status, frames } = await postSse(base, '/chat/completions', { model: MODEL_ID, messages, stream: true });
  t.is(status, 200);
  t.deepEqual(frames.slice(-2).map((f) => (f === '[DONE]' ? f : Object.keys(JSON.parse(f)))), [['error'], '[DONE]']);
});

test('backend - a backend that ends without a finish reason is a 500', async (t) => {
  const backend = { maxRequestTokens: () => undefined, readiness: async () => ({ ready: true }), generate: async function* () { yield { tokens: [66] }; } };
  const { client } = await startTestGateway(t, backend);
  await t.throwsAsync(client.completions.create({ model: MODEL_ID, prompt: 'Hi' }), { instanceOf: OpenAI.InternalServerError });
});

test('backend - a client disconnecting mid-stream aborts the backend signal within a second', async (t) => {
  const backend = new ReplayBackend({ script: () => REFERENCE[0]!.greedy_ids, loop: true, delayMs: 20 });
  const { client } = await startTestGateway(t, backend);
  const stream = await client.chat.completions.create({ model: MODEL_ID, messages, stream: true });
  let chunks = 0;
  let abortedAt = 0;
  for await (const _ of stream) {
    if (++chunks === 3) {
      abortedAt = performance.now();
      stream.controller.abort();
    }
  }
  const call = backend.calls[0]!;
  for (let waited = 0; call.abortedAt === undefined && waited < 1000; waited += 10) await sleep(10);
  t.truthy(call.abortedAt, 'backend signal aborted');
  t.true(call.abortedAt! - abortedAt < 1000, `aborted ${call.abortedAt! - abortedAt} ms after the client left`);
  // The backend stopped producing: no more events once aborted.
  const events = call.events;
  await sleep(100);
  t.is(call.events, events);
});

test('backend - a client disconnecting from a non-streamed request aborts the backend too', async (t) => {
  const backend = new ReplayBackend({ script: () => REFERENCE[0]!.greedy_ids, loop: true, delayMs: 20 });
  const { base } = await startTestGateway(t, backend);
  const ac = new AbortController();
  const pending = fetch(`${base}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL_ID, prompt: 'Hi' }),
    signal: ac.signal,
  });
  while (backend.calls.length === 0 || backend.calls[0]!.events < 3) await sleep(10);
  const abortedAt = performance.now();
  ac.abort();
  await t.throwsAsync(pending, { any: true, name: 'AbortError' });
  const call = backend.calls[0]!;
  for (let waited = 0; call.abortedAt === undefined && waited < 1000; waited += 10) await sleep(10);
  t.truthy(call.abortedAt);
  t.true(call.abortedAt! - abortedAt < 1000);
});
