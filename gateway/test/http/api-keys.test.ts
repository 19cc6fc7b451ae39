// API keys: Bearer keys through the official client and plain fetch, /health always open, /metrics behind
// the API keys or its own key, and no key ever in the logs.
import { Writable } from 'node:stream';
import test from 'ava';
import OpenAI from 'openai';
import { pino } from 'pino';
import { ApiKeySet, LOG_REDACT, startGateway, type StartGatewayOptions } from '../../src/index.js';
import { EOS, MODEL_ID, REFERENCE, model } from './helpers/fixture.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const reply = REFERENCE[0]!.greedy_ids;
const KEYS = ['sk-first-secret-1111', 'sk-second-secret-2222'];

/** A debug-level logger with the gateway's redaction, whose lines the test reads. */
function capturedLogger(): { logger: pino.Logger; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, cb) => (lines.push(String(chunk)), cb()) });
  return { logger: pino({ level: 'debug', redact: LOG_REDACT }, sink), text: () => lines.join('') };
}

async function gateway(t: import('ava').ExecutionContext, extra: Partial<StartGatewayOptions>): Promise<string> {
  const gw = await startGateway({
    model: model(), servedModelName: MODEL_ID, backend: new ReplayBackend({ script: () => [...reply, EOS] }), logger: pino({ level: 'silent' }),
    extraRoutes: (app) => app.get('/metrics', (_req, res) => res.type('text/plain').send('lw_up 1\n')),
    ...extra,
  });
  t.teardown(() => gw.close());
  return gw.url;
}

const ask = (url: string, apiKey: string) =>
  new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 }).chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });

test('api keys - every configured key works through the official client; a wrong one is AuthenticationError invalid_api_key', async (t) => {
  const url = await gateway(t, { apiAccess: { open: false, keys: ApiKeySet.of(KEYS) } });
  for (const key of KEYS) t.is((await ask(url, key)).object, 'chat.completion');
  const err = await t.throwsAsync(ask(url, 'sk-wrong'), { instanceOf: OpenAI.AuthenticationError });
  t.is(err!.status, 401);
  t.like(err!.error, { type: 'invalid_request_error', code: 'invalid_api_key' });
  t.false(JSON.stringify(err!.error).includes('sk-wrong'));
  // Listing models takes a key too.
  await t.throwsAsync(new OpenAI({ baseURL: `${url}/v1`, apiKey: 'nope', maxRetries: 0 }).models.list(), { instanceOf: OpenAI.AuthenticationError });
});

test('api keys - plain fetch: no Authorization is a 401 saying how to send one, before the body is read; /health stays open', async (t) => {
  const url = await gateway(t, { apiAccess: { open: false, keys: ApiKeySet.of(KEYS) } });
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' });
  t.is(res.status, 401);
  t.is(res.headers.get('www-authenticate'), 'Bearer');
  const body = (await res.json()) as any;
  t.like(body.error, { type: 'invalid_request_error', code: null, param: null });
  t.regex(body.error.message, /Authorization: Bearer YOUR_KEY/);
  t.is((await fetch(`${url}/v1/models`, { headers: { authorization: `Basic ${KEYS[0]}` } })).status, 401);
  t.is((await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${KEYS[1]}` } })).status, 200);
  t.is((await fetch(`${url}/health`)).status, 200);
});

test('api keys - /metrics follows the API keys by default, or takes only METRICS_API_KEY, or is public', async (t) => {
  const keys = ApiKeySet.of(KEYS);
  const withKeys = await gateway(t, { apiAccess: { open: false, keys } });
  const metrics = (url: string, key?: string) => fetch(`${url}/metrics`, key ? { headers: { authorization: `Bearer ${key}` } } : {}).then((r) => r.status);
  t.deepEqual([await metrics(withKeys), await metrics(withKeys, KEYS[0])], [401, 200]);
  const ownKey = await gateway(t, { apiAccess: { open: false, keys }, opsAccess: { open: false, keys: ApiKeySet.of(['scrape-key']) } });
  t.deepEqual([await metrics(ownKey, KEYS[0]), await metrics(ownKey, 'scrape-key')], [401, 200]);
  const pub = await gateway(t, { apiAccess: { open: false, keys }, opsAccess: { open: true } });
  t.is(await metrics(pub), 200);
});

test('api keys - no keys configured: open, and a warning at start says so', async (t) => {
  const { logger, text } = capturedLogger();
  const url = await gateway(t, { logger });
  t.is((await ask(url, 'anything')).object, 'chat.completion');
  t.regex(text(), /no API keys configured.*open to anyone/);
});

test('api keys - keys never reach the logs: refusals log none, and an Authorization header is redacted', async (t) => {
  const { logger, text } = capturedLogger();
  const url = await gateway(t, { apiAccess: { open: false, keys: ApiKeySet.of(KEYS) }, logger });
  await t.throwsAsync(ask(url, 'sk-presented-wrong-9999'));
  await ask(url, KEYS[0]!);
  logger.info({ req: { headers: { authorization: `Bearer ${KEYS[1]}` } }, headers: { authorization: `Bearer ${KEYS[1]}` } }, 'a request');
  const logs = text();
  t.regex(logs, /request refused/);
  t.regex(logs, /\[Redacted\]/);
  for (const k of [...KEYS, 'sk-presented-wrong-9999']) t.false(logs.includes(k), k);
});
