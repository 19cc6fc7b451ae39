// The access line (one per request at info), X-Request-Id, and the HTTP layer's serving metrics, on a
// replaying backend that names a decode node the way the NATS backend does (trace.nodeId).
import test from 'ava';
import OpenAI from 'openai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { BackendRejection, startGateway, type GenerationBackend } from '../../src/index.js';
import { EOS, MODEL_ID, model } from './helpers/fixture.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const tok = model().tokenizer;
const ids = (text: string): number[] => tok.encode(text, { addBos: false });
type Line = Record<string, any>;

/** A gateway whose log lines and metrics the test reads; the backend says its requests run on 'decode-7'. */
async function start(t: import('ava').ExecutionContext, replay: ReplayBackend) {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const backend: GenerationBackend = {
    maxRequestTokens: () => replay.maxRequestTokens(),
    readiness: () => replay.readiness(),
    generate(req, signal) {
      if (req.trace) req.trace.nodeId = 'decode-7';
      return replay.generate(req, signal);
    },
  };
  const registry = new Registry();
  const gw = await startGateway({ model: model(), servedModelName: MODEL_ID, backend, logger, metricsRegistry: registry });
  t.teardown(() => gw.close());
  const access = async (n: number): Promise<Line[]> => {
    // the line is written when the response closes, which may be just after the client has read it
    for (let i = 0; i < 100 && lines.filter((l) => l.msg === 'access').length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return lines.filter((l) => l.msg === 'access');
  };
  return { gw, lines, registry, access, client: new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'test', maxRetries: 0 }) };
}

/** A sample's value (a histogram's by its _count/_sum name), 0 when absent. */
async function value(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await registry.getSingleMetric(name.replace(/_(count|sum)$/, ''))!.get();
  const hit = m.values.find((v) => ((v as { metricName?: string }).metricName ?? m.name) === name && Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x));
  return hit?.value ?? 0;
}

test('access log - one info line per request with id, endpoint, status, tokens, TTFT and node; X-Request-Id kept', async (t) => {
  const text = ids('Hello world');
  const { gw, access } = await start(t, new ReplayBackend({ script: () => [...text, EOS] }));
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'client-abc.123' },
    body: JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], stream: true }),
  });
  t.is(res.headers.get('x-request-id'), 'client-abc.123');
  await res.text();
  const [line] = await access(1);
  t.truthy(line);
  t.is(line!.level, 30); // info
  t.regex(line!.requestId, /^[0-9a-f-]{36}$/);
  t.is(line!.clientRequestId, 'client-abc.123');
  t.is(line!.endpoint, '/v1/chat/completions');
  t.is(line!.status, 200);
  t.true(line!.promptTokens > 0);
  t.is(line!.completionTokens, text.length + 1);
  t.is(line!.finishReason, 'stop');
  t.is(typeof line!.ttftMs, 'number');
  t.true(line!.ms >= line!.ttftMs);
  t.is(line!.nodeId, 'decode-7');
});

test('access log - no or unusable X-Request-Id: the response carries the request id; 4xx logged at info', async (t) => {
  const { gw, lines, access } = await start(t, new ReplayBackend({ script: () => [EOS] }));
  const plain = await fetch(`${gw.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"nope","prompt":"x"}' });
  t.is(plain.status, 404);
  const bad = await fetch(`${gw.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'has space' }, body: '{' });
  t.is(bad.status, 400);
  const [l1, l2] = await access(2);
  t.is(plain.headers.get('x-request-id'), l1!.requestId);
  t.is(bad.headers.get('x-request-id'), l2!.requestId);
  t.is(l2!.clientRequestId, undefined);
  t.deepEqual([l1!.status, l2!.status], [404, 400]);
  t.true([l1, l2].every((l) => l!.level === 30 && l!.endpoint === '/v1/completions' && l!.promptTokens === undefined));
  t.is(lines.filter((l) => l.msg === 'request refused' && l.level === 30).length, 2);
});

test('serving metrics - requests by endpoint, status and finish reason; TTFT, ITL and e2e counts; token counters', async (t) => {
  const text = ids('Hello world STOP here and on');
  const { registry, client, access } = await start(t, new ReplayBackend({ script: () => [...text, EOS], tokensPerEvent: 2 }));
  const whole = await client.completions.create({ model: MODEL_ID, prompt: 'x', max_tokens: 100 }); // ends with EOS: stop
  const stopped = await client.completions.create({ model: MODEL_ID, prompt: 'x', max_tokens: 100, stop: 'STOP' }); // the gateway's stop
  const short = await client.completions.create({ model: MODEL_ID, prompt: 'x', max_tokens: 3 });
  await access(3);
  const usages = [whole, stopped, short].map((r) => r.usage!);
  t.deepEqual([whole, stopped, short].map((r) => r.choices[0]!.finish_reason), ['stop', 'stop', 'length']);
  const ep = { endpoint: '/v1/completions' };
  t.is(await value(registry, 'latentwire_gateway_http_requests_total', { ...ep, status: '200', finish_reason: 'stop' }), 2);
  t.is(await value(registry, 'latentwire_gateway_http_requests_total', { ...ep, status: '200', finish_reason: 'length' }), 1);
  const completion = usages.reduce((a, u) => a + u.completion_tokens, 0);
  t.is(await value(registry, 'latentwire_gateway_completion_tokens_total', ep), completion);
  t.is(await value(registry, 'latentwire_gateway_prompt_tokens_total', ep), usages.reduce((a, u) => a + u.prompt_tokens, 0));
  t.is(await value(registry, 'latentwire_gateway_time_to_first_token_seconds_count', ep), 3);
  t.is(await value(registry, 'latentwire_gateway_e2e_request_latency_seconds_count', ep), 3);
  t.is(await value(registry, 'latentwire_gateway_inter_token_latency_seconds_count', ep), completion - 3);
});

test('serving metrics - a refusal counts its status with finish reason error', async (t) => {
  const { registry, client, access } = await start(t, new ReplayBackend({ script: () => [EOS], reject: new BackendRejection(429, 'busy', 'rate_limit_exceeded', 1) }));
  await t.throwsAsync(client.completions.create({ model: MODEL_ID, prompt: 'x' }), { instanceOf: OpenAI.RateLimitError });
  const [line] = await access(1);
  t.is(line!.status, 429);
  t.is(await value(registry, 'latentwire_gateway_http_requests_total', { endpoint: '/v1/completions', status: '429', finish_reason: 'error' }), 1);
  t.is(await value(registry, 'latentwire_gateway_time_to_first_token_seconds_count'), 0);
});
