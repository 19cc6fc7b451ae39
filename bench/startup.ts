// Start-up benchmark: what a prefill node and a decode node do between loading weights and reporting ready, at
// DeepSeek-V2-Lite shapes with synthetic bf16 weights — every shader compiled (compileAll) and dispatched once
// (warmUp) — and then whether a first request after ready waits for anything: the first prefill of several
// prompt lengths and the first decode step of several batch sizes, timed against the same request run again,
// with the pipelines each created (none, if compileAll listed every variant).
//   node bench/dist/startup.js
// Ceiling of the first-request rows: the same request once more (ratio 1: nothing left to compile or finish).
// Env: BENCH_CONFIG, BENCH_LAYERS, BENCH_TOKENS (first prefills), BENCH_BATCHES (first decode steps), the decode
// node's own settings (MAX_BATCH, KV_CACHE_DTYPE, KV_CACHE_MIB, PAGE_SIZE, DECODE_ATTENTION_ENGINE...), GPU settings.
import type { Gpu } from '@latentwire/gpu';
import { failStart } from '@latentwire/protocol';
import { syntheticWeights, type ModelWeights } from '@latentwire/gpu/weights';
import { PrefillModel } from '@latentwire/gpu/prefill';
import { DecodeModel, decodeSettings } from '@latentwire/decode-node';
import { benchEnv } from './lib/env.js';
import { syntheticSteps } from './lib/step-input.js';
import { benchModel } from './lib/bench-model.js';
import { printTable, runMeta, spread, writeJson, type Row } from './lib/report.js';

/** Timed repeats of a first request. */
const REPEATS = 5;

/** Runs the request once, then REPEATS times more: the first's time, the repeats' median and spread, the pipelines the first created. */
async function firstAgainstAgain(gpu: Gpu, run: () => Promise<void>): Promise<Row> {
  const before = gpu.pipelines.size;
  const t0 = performance.now();
  await run();
  const first = performance.now() - t0;
  const created = gpu.pipelines.size - before;
  const again: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const t = performance.now();
    await run();
    again.push(performance.now() - t);
  }
  const s = spread(again);
  return { 'first ms': first, 'again ms': s.median, 'again min–max': `${s.min.toFixed(2)}–${s.max.toFixed(2)}`, 'first / again': first / s.median, 'pipelines created': created };
}

function releaseWeights(gpu: Gpu, w: ModelWeights): void {
  for (const b of w.buffers) gpu.destroy(b);
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const { gpu, software, cfg } = await benchModel(env);
  const info = gpu.adapterInfo;
  const layers = cfg.numLayers;
  const prompts = env.BENCH_TOKENS ?? (software ? [5, 40] : [1, 7, 100, 1000, 4096]);

  // The prefill node: its own weights (the shared experts as their own MLP), every prompt length up to the model's context.
  const phases: Row[] = [];
  const phase = (row: Row) => {
    phases.push(row);
    console.log(`${row.node} ${row.phase}: ${Math.round(row.ms as number)} ms, ${row.what}`);
  };
  const firsts: Row[] = [];
  let weights = await syntheticWeights(gpu, cfg);
  const prefill = new PrefillModel(gpu, cfg, weights, { ropeFreqPrecision: env.ROPE_FREQ_PRECISION });
  const compiled = await prefill.compileAll();
  phase({ node: 'prefill', phase: 'compile (compileAll)', ms: compiled.ms, what: `${compiled.shaders} shaders, ${compiled.buckets.length} prompt-length buckets from ${compiled.lengthsTried} lengths dry-run` +
    (compiled.limit ? `; ${compiled.limit.tokens}+ tokens refused on this device` : '') });
  const warm = await prefill.warmUp(compiled);
  phase({ node: 'prefill', phase: 'warm-up (warmUp)', ms: warm.ms, what: `${warm.runs} prefills, ${gpu.pipelines.undispatched().length} pipelines left undispatched` });
  for (const T of prompts.filter((T) => !compiled.limit || T < compiled.limit.tokens)) {
    const ids = Array.from({ length: T }, (_, i) => (i * 7919 + 13) % cfg.vocabSize);
    firsts.push({ node: 'prefill', request: `prompt of ${T} tokens`, ...(await firstAgainstAgain(gpu, async () => (await prefill.prefill(ids)).release())) });
  }
  prefill.dispose();
  releaseWeights(gpu, weights);

  // The decode node: weights with the shared experts among the routed ones, the cache and batch as its env says.
  weights = await syntheticWeights(gpu, cfg, 1, { routeSharedExperts: true });
  const s = decodeSettings(cfg, process.env);
  const context = software ? 100 : 1000;
  const maxBatch = s.maxBatch;
  const batches = (env.BENCH_BATCHES ?? (software ? [1, 3] : [1, 5, 16, 33, maxBatch])).filter((B) => B <= maxBatch);
  const perSeq = Math.ceil((context + REPEATS + 2) / s.pageSize);
  const needed = Math.max(...batches) * perSeq;
  const numPages = software ? needed : Math.max(s.numPages, needed); // lavapipe's 128 MiB bindings hold the bench's pages, not KV_CACHE_MIB's
  const t0 = performance.now();
  const decode = await DecodeModel.create(gpu, cfg, weights, {
    maxBatch, maxContext: s.maxContext, pageSize: s.pageSize, kvDtype: s.kvDtype, numPages, headGroup: s.headGroup, attentionEngine: s.attentionEngine, kvSplits: s.kvSplits,
    ropeFreqPrecision: env.ROPE_FREQ_PRECISION,
  });
  phase({ node: 'decode', phase: 'absorbed weights and cache (DecodeModel.create)', ms: performance.now() - t0, what: `${numPages} pages of ${s.pageSize} tokens, ${s.kvDtype}` });
  const dc = await decode.compileAll();
  phase({ node: 'decode', phase: 'compile (compileAll)', ms: dc.ms, what: `${dc.shaders} shaders for batches 1..${maxBatch}` });
  const dw = await decode.warmUp();
  phase({ node: 'decode', phase: 'warm-up (warmUp)', ms: dw.ms, what: `${dw.steps} steps, ${gpu.pipelines.undispatched().length} pipelines left undispatched` });
  for (const B of batches) {
    const input = syntheticSteps(B, context, perSeq, cfg.vocabSize);
    let i = 0;
    firsts.push({ node: 'decode', request: `step of batch ${B} at ${context} tokens`, ...(await firstAgainstAgain(gpu, async () => void (await decode.step(input(i++))))) });
  }
  decode.release();
  releaseWeights(gpu, weights);

  const meta = runMeta(gpu);
  printTable(`start-up on ${meta.card}, driver ${meta.driver}, commit ${meta.commit}, ${meta.date} (${layers} layers, synthetic weights; wall clock)`, phases);
  printTable(`first requests after ready, against the same request again (median of ${REPEATS} with min–max; ceiling: first / again = 1, nothing compiled or finished on the way)`, firsts);
  const file = writeJson('startup', { ...meta, adapter: info, config: env.BENCH_CONFIG, layers, decodeSettings: { ...s, numPages }, phases, firstRequests: firsts });
  console.log(`\nwrote ${file}`);
  gpu.dispose();
}

main().catch((err: unknown) => failStart('bench:startup', err));
