// Open-loop serving benchmark in the manner of SGLang's bench_serving: NUM_PROMPTS requests arriving as a
// Poisson process at REQUEST_RATE req/s, each a token-id prompt of INPUT_MIN..INPUT_MAX random ids and
// OUTPUT_MIN..OUTPUT_MAX tokens out (max_tokens with ignore_eos), streamed from /v1/completions with the
// official `openai` client. Against BENCH_URL (e.g. a running `npm start`, http://127.0.0.1:8000), or by
// default against a whole cluster started in this process (lib/cluster.ts: its own nats-server and
// redis-server, DECODE_NODES decode nodes and a prefill node on the tiny fixture, the gateway on a free port).
// Reports request throughput, output and total tokens/s, TTFT, inter-token latency (gaps between streamed
// chunks), TPOT, end-to-end latency (p50/p99) and completed/failed counts.
// Ceiling: the decode engine's own step throughput at the run's mean batch (decode tokens / engine steps)
// and mean context, measured in-process after the run with nothing else on the device; fraction = output
// tokens/s over it. Against BENCH_URL it can't be measured from here: give DECODE_CEILING_TOKS (e.g. from
// `npm run bench:decode` on that card) or the fraction is left out. An open loop below saturation is
// load-limited: compare the offered load (rate × mean output) too.
//   node bench/dist/serve.js
// Env: BENCH_URL  NUM_PROMPTS (32)  REQUEST_RATE (4; inf = all at once)  INPUT_MIN (16)  INPUT_MAX (128)
//      OUTPUT_MIN (8)  OUTPUT_MAX (32)  SEED (1)  BENCH_VOCAB (512, prompt ids' range against BENCH_URL)
//      DECODE_CEILING_TOKS   in-process: DECODE_NODES (1)  KV_CACHE_DTYPE (fp8_e4m3)  PAGE_SIZE (64)
//      KV_CACHE_PAGES (512)  MAX_BATCH (64)  TOKEN_FLUSH_MS (5)  MODEL_DIR (tiny fixture)  GPU settings.
import OpenAI from 'openai';
import type { KvDtype } from '@latentwire/protocol';
import { startBenchCluster, type BenchCluster } from './lib/cluster.js';
import { planWorkload, type PlannedRequest } from './lib/load-gen.js';
import { loadNote, printTable, writeJson, type Row } from './lib/report.js';
import { mean, summarize } from './lib/stats.js';
import { measureStepCeiling, type StepCeiling } from './lib/step-ceiling.js';
import { streamCompletion, type RequestResult } from './lib/stream-client.js';

function settingsFromEnv(e: NodeJS.ProcessEnv) {
  const num = (name: string, def: number, infinite = false) => {
    const v = e[name] === undefined ? def : infinite && /^inf/i.test(e[name]!) ? Infinity : Number(e[name]);
    if (!(v > 0) || (!infinite && !Number.isFinite(v))) throw new Error(`${name}=${e[name]}: expected a positive number${infinite ? ' or inf' : ''}`);
    return v;
  };
  const s = {
    url: e.BENCH_URL?.replace(/\/+$/, ''),
    numPrompts: num('NUM_PROMPTS', 32), rate: num('REQUEST_RATE', 4, true),
    inputMin: num('INPUT_MIN', 16), inputMax: num('INPUT_MAX', 128), outputMin: num('OUTPUT_MIN', 8), outputMax: num('OUTPUT_MAX', 32),
    seed: num('SEED', 1), vocab: num('BENCH_VOCAB', 512),
    ceilingTokS: e.DECODE_CEILING_TOKS === undefined ? undefined : num('DECODE_CEILING_TOKS', 1),
    decodeNodes: num('DECODE_NODES', 1), kvDtype: (e.KV_CACHE_DTYPE ?? 'fp8_e4m3') as KvDtype, pageSize: num('PAGE_SIZE', 64),
    numPages: num('KV_CACHE_PAGES', 512), maxBatch: num('MAX_BATCH', 64), tokenFlushMs: num('TOKEN_FLUSH_MS', 5), modelDir: e.MODEL_DIR,
  };
  if (s.inputMin > s.inputMax || s.outputMin > s.outputMax) throw new Error('INPUT_MIN/OUTPUT_MIN must not exceed INPUT_MAX/OUTPUT_MAX');
  return Object.freeze(s);
}

/** Starts every request at its planned time, whatever the others are doing (an open loop). */
async function runOpenLoop(client: OpenAI, model: string, plan: PlannedRequest[]): Promise<{ results: RequestResult[]; seconds: number }> {
  const t0 = performance.now();
  const results = await Promise.all(plan.map(async (r) => {
    const wait = r.sendAt - (performance.now() - t0);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    return streamCompletion(client, model, r, t0);
  }));
  return { results, seconds: (performance.now() - t0) / 1e3 };
}

function metricsRows(results: RequestResult[], seconds: number): { throughput: Row[]; latency: Row[]; outputTokS: number } {
  const ok = results.filter((r) => r.ok);
  const input = ok.reduce((a, r) => a + r.inputTokens, 0), output = ok.reduce((a, r) => a + r.outputTokens, 0);
  const tpot = ok.filter((r) => r.outputTokens > 1).map((r) => (r.e2eMs - r.ttftMs) / (r.outputTokens - 1));
  const lat = (name: string, xs: number[]) => {
    const t = summarize(xs);
    return { 'latency (ms)': name, p50: t.p50, p99: t.p99, mean: t.mean, max: t.max, n: t.n };
  };
  const throughput: Row[] = [
    { metric: 'completed', value: ok.length },
    { metric: 'failed', value: results.length - ok.length },
    { metric: 'duration s', value: seconds },
    { metric: 'input / output tokens', value: `${input} / ${output}` },
    { metric: 'request throughput req/s', value: ok.length / seconds },
    { metric: 'input tokens/s', value: input / seconds },
    { metric: 'output tokens/s', value: output / seconds },
    { metric: 'total tokens/s', value: (input + output) / seconds },
  ];
  const latency: Row[] = [
    lat('TTFT', ok.map((r) => r.ttftMs)),
    lat('inter-token latency', ok.flatMap((r) => [...r.itlMs])),
    lat('TPOT', tpot),
    lat('end-to-end', ok.map((r) => r.e2eMs)),
  ];
  return { throughput, latency, outputTokS: output / seconds };
}

async function main(): Promise<void> {
  const s = settingsFromEnv(process.env);
  let cluster: BenchCluster | null = null;
  try {
    if (!s.url) {
      cluster = await startBenchCluster({
        decodeNodes: s.decodeNodes, kvDtype: s.kvDtype, pageSize: s.pageSize, numPages: s.numPages, maxBatch: s.maxBatch,
        maxContext: s.inputMax + s.outputMax + s.pageSize, tokenFlushMs: s.tokenFlushMs, modelDir: s.modelDir,
        natsUrl: process.env.NATS_URL, redisUrl: process.env.REDIS_URL,
      });
    }
    const url = s.url ?? cluster!.url;
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 300_000 });
    const model = (await client.models.list()).data[0]!.id;
    const vocabSize = cluster ? cluster.decode[0]!.stack.folder.config.vocabSize : s.vocab;
    const plan = planWorkload({ ...s, vocabSize, firstId: 2 });
    console.log(`${s.url ? `BENCH_URL ${url}` : `in-process cluster ${url} (${s.decodeNodes} decode node(s), ${s.kvDtype}, page ${s.pageSize}, MAX_BATCH ${s.maxBatch})`}; ` +
      `model ${model}; ${s.numPrompts} prompts at ${s.rate} req/s, input ${s.inputMin}-${s.inputMax}, output ${s.outputMin}-${s.outputMax}; ${loadNote()}`);

    // warm-up: one short request compiles the prefill and decode pipelines before the clock starts
    await streamCompletion(client, model, { index: -1, sendAt: 0, promptIds: plan[0]!.promptIds.slice(0, s.inputMin), maxTokens: 2 }, performance.now());
    const steps0 = cluster ? cluster.decode.reduce((a, d) => a + d.stack.engine.steps, 0) : 0;
    const { results, seconds } = await runOpenLoop(client, model, plan);
    const { throughput, latency, outputTokS } = metricsRows(results, seconds);
    const ok = results.filter((r) => r.ok);
    const offered = Number.isFinite(s.rate) ? s.rate * mean(plan.map((r) => r.maxTokens)) : NaN;

    // the ceiling: the engine alone at the run's mean batch and context
    let ceiling: (StepCeiling & { source: string }) | { tokensPerS: number; source: string } | null = s.ceilingTokS ? { tokensPerS: s.ceilingTokS, source: 'DECODE_CEILING_TOKS' } : null;
    if (cluster) {
      const steps = cluster.decode.reduce((a, d) => a + d.stack.engine.steps, 0) - steps0;
      const decodeTokens = ok.reduce((a, r) => a + Math.max(0, r.outputTokens - 1), 0); // the first token is the prefill's
      const batch = Math.max(1, Math.round(decodeTokens / Math.max(1, steps)));
      const context = Math.round(mean(plan.map((r) => r.promptIds.length + r.maxTokens / 2))); // the mean sequence's middle
      for (const d of cluster.decode) await d.stack.engine.idle();
      const m = await measureStepCeiling(cluster.decode[0]!.stack.model, batch, context, 20);
      ceiling = { ...m, source: `one engine's steps alone at the run's mean batch ${batch} (${decodeTokens} decode tokens / ${steps} steps), context ${m.context}` };
    }
    const errors = [...new Set(results.filter((r) => !r.ok).map((r) => r.error))].slice(0, 5);
    if (errors.length) console.log(`errors: ${errors.join(' | ')}`);
    const ceilingNote = ceiling
      ? `ceiling ${ceiling.tokensPerS.toFixed(1)} decode tok/s (${ceiling.source}${'stepMs' in ceiling ? `, ${ceiling.stepMs.toFixed(2)} ms/step` : ''}); ` +
        `output tok/s reached ${((100 * outputTokS) / ceiling.tokensPerS).toFixed(1)}% of it`
      : 'ceiling: bench:decode\'s tokens/s on the serving card (set DECODE_CEILING_TOKS for a fraction)';
    printTable(`serving throughput (offered load ${offered.toFixed(1)} output tok/s); ${ceilingNote}`, throughput);
    printTable('serving latency', latency);
    const file = writeJson('serve', {
      settings: s, url, model, seconds, offeredOutputTokS: offered, outputTokS, ceiling,
      fraction: ceiling ? outputTokS / ceiling.tokensPerS : null, throughput, latency, errors, requests: results,
    });
    console.log(`\n${loadNote()}; wrote ${file}`);
  } finally {
    await cluster?.stop();
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
