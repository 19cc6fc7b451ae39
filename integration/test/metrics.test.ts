// Serving metrics and access lines after real traffic: N requests through the in-process cluster (real
// nats-server, redis-server, WebGPU), then every service's registry is scraped and each metric must have
// moved by exactly what the requests' usage says (token counters, request counts, one observation per
// request or per token), and the pool must read empty again.
import test from 'ava';
import { pino } from 'pino';
import { readFixtureJson } from '@latentwire/testing';
import { sum } from './helpers/metrics.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

interface Case { readonly input_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

let cluster: TestCluster;
const lines: Record<string, any>[] = [];
test.before(async () => {
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  cluster = await startCluster({ decodeNodes: 2, kvDtype: 'bf16', pageSize: 16, numPages: 64, maxBatch: 16, logger });
});
test.after.always(async () => {
  await cluster?.stop();
});


test.serial('metrics - after N requests every service\'s metrics moved by the requests\' counts and tokens', async (t) => {
  const { client, model, registries } = cluster;
  const gw = registries.gateway, dec = registries.decode, pre = registries.prefill;
  const N = 4;
  const results: { usage?: { prompt_tokens: number; completion_tokens: number } | undefined; choices: { finish_reason: string }[] }[] = [];
  for (let i = 0; i < N; i++) {
    const c = cases[i % cases.length]!;
    const body = { model, prompt: c.input_ids, max_tokens: 6 + i, temperature: 0 };
    if (i % 2 === 0) {
      results.push(await client.completions.create(body, { headers: { 'x-request-id': `metrics-test-${i}` } }));
    } else {
      let usage, finish;
      for await (const chunk of await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })) {
        usage = chunk.usage ?? usage;
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      results.push({ usage: usage!, choices: [{ finish_reason: finish! }] });
    }
  }
  t.true(await cluster.pagesBack());
  const prompt = results.reduce((a, r) => a + r.usage!.prompt_tokens, 0);
  const completion = results.reduce((a, r) => a + r.usage!.completion_tokens, 0);
  const finishes = results.map((r) => r.choices[0]!.finish_reason);
  const ep = { endpoint: '/v1/completions' };

  // gateway: HTTP side
  t.is(await sum(gw, 'latentwire_gateway_http_requests_total', { ...ep, status: '200' }), N);
  for (const f of ['stop', 'length']) {
    t.is(await sum(gw, 'latentwire_gateway_http_requests_total', { ...ep, finish_reason: f }), finishes.filter((x) => x === f).length, f);
    t.is(await sum(gw, 'latentwire_gateway_requests_ended_total', { outcome: f }), finishes.filter((x) => x === f).length, f);
  }
  t.is(await sum(gw, 'latentwire_gateway_prompt_tokens_total', ep), prompt);
  t.is(await sum(gw, 'latentwire_gateway_completion_tokens_total', ep), completion);
  t.is(await sum(gw, 'latentwire_gateway_time_to_first_token_seconds_count', ep), N);
  t.is(await sum(gw, 'latentwire_gateway_e2e_request_latency_seconds_count', ep), N);
  t.is(await sum(gw, 'latentwire_gateway_inter_token_latency_seconds_count', ep), completion - N);
  // gateway: TTFT phases, each once per request, split by the prefill's timing
  for (const phase of ['admission', 'reservation', 'queue', 'prefill', 'kv_transfer', 'first_token']) {
    t.is(await sum(gw, 'latentwire_gateway_ttft_phase_seconds_count', { phase }), N, phase);
  }
  t.is(await sum(gw, 'latentwire_gateway_ttft_phase_seconds_count', { phase: 'unsplit' }), 0);
  t.true(await sum(gw, 'latentwire_gateway_ttft_phase_seconds_sum', { phase: 'prefill' }) > 0);
  t.is(await sum(gw, 'latentwire_gateway_admissions_total', { outcome: 'granted' }), N);

  // decode nodes (summed): every completion token went out; steps were observed; the pool is empty again
  t.is(await sum(dec, 'latentwire_decode_tokens_out_total'), completion);
  t.is(await sum(dec, 'latentwire_decode_requests_admitted_total'), N);
  t.is(await sum(dec, 'latentwire_decode_requests_finished_total'), N);
  const steps = await sum(dec, 'latentwire_decode_step_seconds_count');
  t.true(steps > 0);
  t.is(await sum(dec, 'latentwire_decode_step_batch_size_count'), steps);
  // each step token after the prefill's first is one batch row; overlap may add a dropped row per request
  const rows = await sum(dec, 'latentwire_decode_step_batch_size_sum');
  t.true(rows >= completion - N && rows <= completion, `${rows} batch rows for ${completion - N} decoded tokens`);
  t.is(await sum(dec, 'latentwire_decode_pages', { state: 'used' }), 0);
  t.is(await sum(dec, 'latentwire_decode_pages', { state: 'reserved' }), 0);
  t.is(await sum(dec, 'latentwire_decode_pages', { state: 'free' }), await sum(dec, 'latentwire_decode_total_pages'));
  for (const state of ['running', 'waiting', 'reserved']) t.is(await sum(dec, 'latentwire_decode_sequences', { state }), 0, state);
  t.true(await sum(dec, 'latentwire_decode_kv_bytes_total') > 0);

  // prefill node
  t.is(await sum(pre, 'latentwire_prefill_jobs_total', { outcome: 'completed' }), N);
  t.is(await sum(pre, 'latentwire_prefill_jobs_total', { outcome: 'retry' }), 0);
  t.is(await sum(pre, 'latentwire_prefill_job_seconds_count'), N);
  t.is(await sum(pre, 'latentwire_prefill_forward_seconds_count'), N);
  t.is(await sum(pre, 'latentwire_prefill_queue_wait_seconds_count'), N);
  t.is(await sum(pre, 'latentwire_prefill_prompt_tokens_total'), prompt);
  t.true(await sum(pre, 'latentwire_prefill_kv_chunks_total') >= N);
  t.true(await sum(pre, 'latentwire_prefill_kv_bytes_total') >= await sum(dec, 'latentwire_decode_kv_bytes_total'));
  t.is(await sum(pre, 'latentwire_prefill_queue_jobs', { state: 'waiting' }), 0);
  t.is(await sum(pre, 'latentwire_prefill_queue_jobs', { state: 'active' }), 0);

  // one access line per request, with its tokens, TTFT and decode node; a client's X-Request-Id kept
  const access = lines.filter((l) => l.msg === 'access' && l.endpoint === '/v1/completions');
  t.is(access.length, N);
  const nodes = new Set(cluster.decode.map((d) => d.id));
  access.forEach((l, i) => {
    t.like(l, { status: 200, promptTokens: results[i]!.usage!.prompt_tokens, completionTokens: results[i]!.usage!.completion_tokens, finishReason: finishes[i] });
    t.true(nodes.has(l.nodeId), `node ${l.nodeId}`);
    t.true(l.ttftMs >= 0 && l.ttftMs <= l.ms);
    t.is(l.clientRequestId, i % 2 === 0 ? `metrics-test-${i}` : undefined);
  });
});
