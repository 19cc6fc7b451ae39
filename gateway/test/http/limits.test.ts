// The event loop never blocks on a request: bodies bounded by bytes (plain and compressed), prompts
// tokenized in worker threads, slow clients cut off. Timing assertions have wide margins (2 shared cores).
import { connect } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { pino } from 'pino';
import { startGateway, type StartGatewayOptions } from '../../src/index.js';
import { EOS, MODEL_ID, REFERENCE, model } from './helpers/fixture.js';
import { postSse } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const reply = REFERENCE[0]!.greedy_ids;
const MB = 1024 * 1024;

async function gateway(t: import('ava').ExecutionContext, backend: ReplayBackend, extra: Partial<StartGatewayOptions> = {}): Promise<string> {
  const gw = await startGateway({ model: model(), servedModelName: MODEL_ID, backend, logger: pino({ level: 'silent' }), ...extra });
  t.teardown(() => gw.close());
  return gw.url;
}

async function post(url: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; json: any; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const json = await res.json();
  return { status: res.status, json, ms: performance.now() - t0 };
}

const chatBody = (content: string): string => JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content }] });

test.serial('limits - a 10 MB body and a 25 KB gzip bomb are 413 request_too_large; a corrupt gzip body is 400, an unknown encoding 415', async (t) => {
  const url = await gateway(t, new ReplayBackend({ script: () => [...reply, EOS] }));
  const big = await post(url, chatBody('word '.repeat(2 * MB)));
  t.is(big.status, 413);
  t.like(big.json.error, { type: 'invalid_request_error', code: 'request_too_large' });
  const bomb = gzipSync(chatBody(' '.repeat(10 * MB)), { level: 9 });
  t.true(bomb.length < 25_000, `bomb is ${bomb.length} bytes`);
  const inflated = await post(url, bomb, { 'content-encoding': 'gzip' });
  t.is(inflated.status, 413);
  t.like(inflated.json.error, { code: 'request_too_large' });
  t.log(`10 MB body refused in ${big.ms.toFixed(0)} ms, ${bomb.length} B gzip bomb in ${inflated.ms.toFixed(0)} ms`);
  t.true(big.ms < 2000 && inflated.ms < 2000);
  const notGzip = await post(url, chatBody('Hi'), { 'content-encoding': 'gzip' });
  t.is(notGzip.status, 400);
  t.regex(notGzip.json.error.message, /not valid gzip data/);
  t.is((await post(url, chatBody('Hi'), { 'content-encoding': 'zstd' })).status, 415);
  // A real gzip body of a normal request is served.
  const ok = await post(url, gzipSync(chatBody('Hi')), { 'content-encoding': 'gzip' });
  t.is(ok.status, 200);
  t.is(ok.json.object, 'chat.completion');
});

test.serial('limits - the body limit follows the model context (2048 × 16 + 64 KiB here) and MAX_BODY_BYTES', async (t) => {
  const url = await gateway(t, new ReplayBackend({ script: () => [...reply, EOS] }));
  const limit = 2048 * 16 + 64 * 1024;
  const atLimit = chatBody('x'.repeat(limit - chatBody('').length));
  // Fits the byte limit, then the cheap bound or the tokenizer refuses it as too many tokens.
  const r = await post(url, atLimit);
  t.is(r.status, 400);
  t.is(r.json.error.code, 'context_length_exceeded');
  t.is((await post(url, atLimit + ' ')).status, 413);
  const small = await gateway(t, new ReplayBackend({ script: () => [...reply, EOS] }), { maxBodyBytes: 100 });
  t.is((await post(small, chatBody('x'.repeat(100)))).status, 413);
});

test.serial('limits - a text no context could hold is refused by its byte length, before any tokenizing', async (t) => {
  const url = await gateway(t, new ReplayBackend({ script: () => [...reply, EOS] }), { maxBodyBytes: 12 * MB });
  const r = await post(url, chatBody('a'.repeat(10 * MB)));
  t.is(r.status, 400);
  t.like(r.json.error, { code: 'context_length_exceeded', param: 'messages' });
  t.regex(r.json.error.message, /10485760 bytes of text, which is at least \d+ tokens/);
  t.log(`10 MB prompt refused by its length in ${r.ms.toFixed(0)} ms`);
  t.true(r.ms < 3000);
});

test.serial('limits - a client that trickles its body is cut off with 408 after REQUEST_TIMEOUT_MS', async (t) => {
  const url = new URL(await gateway(t, new ReplayBackend({ script: () => [...reply, EOS] }), { requestTimeoutMs: 500 }));
  const t0 = performance.now();
  const answer = await new Promise<string>((resolve, reject) => {
    const s = connect(Number(url.port), url.hostname, () => {
      s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model":`);
    });
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
  const ms = performance.now() - t0;
  t.regex(answer, /^HTTP\/1\.1 408/);
  t.true(ms >= 450 && ms < 2500, `${ms.toFixed(0)} ms`);
});

test.serial('limits - while a 10 MB body, a gzip bomb and a long prompt are handled, /health answers fast and a stream completes', async (t) => {
  const script = [...reply, ...reply, ...reply, EOS];
  const backend = new ReplayBackend({ script: () => script, delayMs: 15 });
  // A body limit large enough that a 140 KB prompt reaches the tokenizer (~1 s of work in a worker).
  const url = await gateway(t, backend, { maxBodyBytes: 1 * MB });
  const big = chatBody('word '.repeat(2 * MB));
  const bomb = gzipSync(chatBody(' '.repeat(10 * MB)), { level: 9 });
  const long = chatBody('a'.repeat(140_000));
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const stream = postSse(`${url}/v1`, '/chat/completions', { model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], stream: true });
  const refusals = Promise.all([post(url, big), post(url, bomb, { 'content-encoding': 'gzip' }), post(url, long)]);
  let done = false;
  const health: number[] = [];
  const poll = (async () => {
    while (!done) {
      const t0 = performance.now();
      const h = await fetch(`${url}/health`);
      await h.json();
      health.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const [s, [r1, r2, r3]] = await Promise.all([stream, refusals]);
  done = true;
  await poll;
  loop.disable();
  t.deepEqual([r1.status, r2.status, r3.status], [413, 413, 400]);
  t.is(r3.json.error.code, 'context_length_exceeded');
  t.is(s.status, 200);
  t.is(s.frames.at(-1), '[DONE]');
  t.is(s.frames.slice(0, -1).map((f) => JSON.parse(f)).at(-1).choices[0].finish_reason, 'stop');
  const maxHealth = Math.max(...health);
  const maxLoopMs = loop.max / 1e6;
  t.log(`refused: 10 MB ${r1.ms.toFixed(0)} ms, gzip bomb ${r2.ms.toFixed(0)} ms, 140 KB prompt (tokenized) ${r3.ms.toFixed(0)} ms; ` +
    `/health ${health.length} polls, max ${maxHealth.toFixed(0)} ms; event loop max delay ${maxLoopMs.toFixed(0)} ms`);
  t.true(health.length >= 5);
  t.true(maxHealth < 300, `/health took ${maxHealth.toFixed(0)} ms`);
  t.true(maxLoopMs < 500, `event loop blocked ${maxLoopMs.toFixed(0)} ms`);
});
