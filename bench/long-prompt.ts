// Long prompts: a prefill past what one binding holds runs its MLPs in chunks of rows (ModelForward.layer), and
// compileAll's dry run finds the longest prompt the device can prefill. At DeepSeek-V2-Lite shapes with synthetic
// bf16 weights this bench
//   1. runs one prompt with the MLPs whole and in chunks of at most BENCH_CHUNK_ROWS rows: their last logits
//      must agree (the same kernels over the same rows);
//   2. runs compileAll: the limit and its reason, the shaders, the time;
//   3. times prefills of the lengths either side of the chunk count's boundaries and just under the limit
//      (median of 3 after one untimed run, with min–max), their logits checked finite.
// Ceiling: PEAK_TFLOPS (the f32 FMA rate, as bench:prefill), the fraction each length reaches.
//   node bench/dist/long-prompt.js          (on lavapipe: 2 layers, a small vocabulary, chunks of 512 rows)
// Env: BENCH_CONFIG, BENCH_LAYERS, BENCH_TOKENS (the lengths timed; default: around the boundaries and the limit),
// BENCH_CHUNK_ROWS (the chunked model's most rows), PEAK_TFLOPS, GPU settings.
import { failStart } from '@latentwire/protocol';
import { syntheticWeights } from '@latentwire/gpu/weights';
import { PrefillModel } from '@latentwire/gpu/prefill';
import { benchEnv } from './lib/env.js';
import { prefillFlops } from './lib/prefill-flops.js';
import { benchModel } from './lib/bench-model.js';
import { printTable, runMeta, spread, writeJson, type Row } from './lib/report.js';

const TIMED = 3;

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const { gpu, software, cfg } = await benchModel(env);
  const info = gpu.adapterInfo;
  const layers = cfg.numLayers;
  const ids = (T: number) => Array.from({ length: T }, (_, i) => (i * 7919 + 13) % cfg.vocabSize);

  const weights = await syntheticWeights(gpu, cfg);
  const model = new PrefillModel(gpu, cfg, weights, { ropeFreqPrecision: env.ROPE_FREQ_PRECISION });
  const chunkRows = env.BENCH_CHUNK_ROWS ?? (software ? 512 : 8192);

  // 1. whole against chunked, at a length the default chunk holds whole and the chunked model splits in three
  const T1 = Math.min(model.mlpChunkRows, 3 * chunkRows - 1);
  const chunked = new PrefillModel(gpu, cfg, weights, { ropeFreqPrecision: env.ROPE_FREQ_PRECISION, mlpChunkRows: chunkRows });
  const a = await model.prefill(ids(T1));
  const b = await chunked.prefill(ids(T1));
  const diff = a.lastLogits.reduce((m, v, i) => Math.max(m, Math.abs(v - b.lastLogits[i]!)), 0);
  const scale = a.lastLogits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const agreement: Row = {
    tokens: T1, 'whole MLP rows': model.mlpChunkRows, 'chunks': Math.ceil(T1 / chunkRows), 'max |Δlogit|': diff, 'max |logit|': scale,
    'finite': String([...a.lastLogits, ...b.lastLogits].every(Number.isFinite)),
  };
  a.release();
  b.release();
  chunked.dispose();
  printTable('the MLPs whole against in chunks, same prompt', [agreement]);

  // 2. what compileAll finds
  const compiled = await model.compileAll();
  const limit = compiled.limit?.tokens ?? cfg.maxPositionEmbeddings + 1;
  console.log(`\ncompileAll: ${compiled.shaders} shaders in ${(compiled.ms / 1e3).toFixed(1)} s over ${compiled.lengthsTried} lengths; ` +
    `buckets ${compiled.buckets.join(', ')}; limit ${compiled.limit ? `${compiled.limit.tokens} tokens (${compiled.limit.reason})` : 'none within the context'}`);

  // 3. the lengths around each chunk count's boundary, and the longest the device takes
  const M = model.mlpChunkRows;
  const lengths = env.BENCH_TOKENS ?? [...new Set(software ? [M + 1] : [4096, M, M + 1, 2 * M, 2 * M + 1, limit - 1])].filter((T) => T >= 1 && T < limit).sort((x, y) => x - y);
  const timed = software ? 1 : TIMED;
  const rows: Row[] = [];
  for (const T of lengths) {
    const prompt = ids(T);
    let finite = true;
    const run = async () => {
      const out = await model.prefill(prompt);
      finite &&= out.lastLogits.every(Number.isFinite);
      out.release();
    };
    await run(); // its buffers and bind groups
    const times: number[] = [];
    for (let i = 0; i < timed; i++) {
      const t0 = performance.now();
      await run();
      times.push(performance.now() - t0);
    }
    const { median, min, max } = spread(times);
    const tflops = prefillFlops(cfg, T) / (median / 1e3) / 1e12;
    rows.push({
      tokens: T, 'MLP chunks': Math.ceil(T / M), ms: median, 'min–max': `${min.toFixed(0)}–${max.toFixed(0)}`, 'tokens/s': T / (median / 1e3),
      'TFLOP/s': tflops, '% f32 peak': (100 * tflops) / env.PEAK_TFLOPS, 'logits finite': String(finite),
    });
    console.log(JSON.stringify(rows.at(-1)));
  }
  const meta = runMeta(gpu);
  printTable(`long prompts on ${meta.card}, driver ${meta.driver}, commit ${meta.commit}, ${meta.date} (${layers} layers, synthetic weights; ` +
    `wall clock incl. the last logits' readback, median of ${timed} with min–max; ceiling PEAK_TFLOPS ${env.PEAK_TFLOPS})`, rows);
  const file = writeJson('long-prompt', {
    ...meta, adapter: info, config: env.BENCH_CONFIG, layers, peakTflops: env.PEAK_TFLOPS, agreement,
    compile: { shaders: compiled.shaders, ms: compiled.ms, lengthsTried: compiled.lengthsTried, buckets: compiled.buckets, limit: compiled.limit }, prefill: rows,
  });
  console.log(`\nwrote ${file}`);
  model.dispose();
  gpu.dispose();
}

main().catch((err: unknown) => failStart('bench:long-prompt', err));
