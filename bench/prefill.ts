// Prefill benchmark at DeepSeek-V2-Lite shapes with synthetic bf16 weights generated on the GPU: matmul
// GFLOP/s at the model's projection shapes, and whole-prefill tokens/s for a few prompt lengths, each against
// the f32 FMA ceiling (PEAK_TFLOPS, default 65 = H100 from WGSL).
//   node bench/dist/prefill.js          (on lavapipe: 2 layers and short prompts unless BENCH_LAYERS / BENCH_TOKENS say)
// Env: BENCH_LAYERS, BENCH_TOKENS (comma list), PEAK_TFLOPS, BENCH_CONFIG (path to a config.json), GPU settings.
import { readFileSync } from 'node:fs';
import { failStart } from '@latentwire/protocol';
import { syntheticWeights } from '@latentwire/gpu/weights';
import { PrefillModel } from '@latentwire/gpu/prefill';
import { benchEnv } from './lib/env.js';
import { prefillFlops } from './lib/prefill-flops.js';

/** transformers' DeepseekV2ForCausalLM on the H200 (bf16, sdpa), the peer this bench is compared with. */
const PYTORCH_PREFILL_H200: readonly { tokens: number; ms: number; tokens_per_s?: number }[] = (
  JSON.parse(readFileSync(new URL('../references/pytorch-transformers.json', import.meta.url), 'utf8')) as {
    runs: { card: string; prefill: { tokens: number; ms: number; tokens_per_s?: number }[] }[];
  }
).runs.find((r) => r.card === 'NVIDIA H200')?.prefill ?? [];
import { benchModel } from './lib/bench-model.js';
import { printTable, runMeta, spread, writeJson, type Row } from './lib/report.js';
import { benchMatmul, QUICK_SHAPES, PREFILL_DECODE_SHAPES } from './matmul.js';


async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const configPath = env.BENCH_CONFIG;
  const { gpu, software, base, cfg } = await benchModel(env);
  const info = gpu.adapterInfo;
  const peak = env.PEAK_TFLOPS;
  const layers = cfg.numLayers;
  const tokensList = env.BENCH_TOKENS ?? (software ? [16, 64] : [512, 2048, 4096]);

  const matmulRows = await benchMatmul(gpu, software ? QUICK_SHAPES : PREFILL_DECODE_SHAPES, { iters: software ? 3 : 20, peakTflops: peak });
  printTable('matmul (bf16 weights, f32 activations)', matmulRows.map((r) => ({
    shape: r.name, M: r.M, N: r.N, K: r.K, ms: r.ms, 'GFLOP/s': r.gflops, '% f32 peak': 100 * r.peakFraction, 'weight GB/s': r.weightGBps, '% HBM': 100 * r.bandwidthFraction, kernel: r.kernel,
  })));

  const weights = await syntheticWeights(gpu, cfg);
  const model = new PrefillModel(gpu, cfg, weights, { ropeFreqPrecision: env.ROPE_FREQ_PRECISION });
  const rows: Row[] = [];
  for (const T of tokensList) {
    const ids = Array.from({ length: T }, (_, i) => (i * 7919) % cfg.vocabSize);
    (await model.prefill(ids)).release(); // compiles every pipeline
    const iters = software ? 1 : 5;
    gpu.profiler?.reset();
    const times: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      (await model.prefill(ids)).release();
      times.push(performance.now() - t0);
    }
    const { median: ms, min, max } = spread(times);
    if (gpu.profiler) {
      const report = gpu.profiler.report();
      const gpuMs = report.reduce((a, r) => a + r.ms, 0) / iters;
      printTable(`GPU time per prefill of ${T} tokens by kernel: ${gpuMs.toFixed(1)} ms`,
        report.slice(0, 16).map((r) => ({ kernel: r.label, 'ms': r.ms / iters, 'dispatches': r.count / iters })));
    }
    const tflops = prefillFlops(cfg, T) / (ms / 1e3) / 1e12;
    const torch = !software && layers === base.numLayers ? PYTORCH_PREFILL_H200.find((r) => r.tokens === T) : undefined;
    rows.push({
      tokens: T, layers, matmul: gpu.matmulOnMatrices ? 'subgroup-matrix' : 'f32', 'ms': ms, 'min–max': `${min.toFixed(1)}–${max.toFixed(1)}`,
      'tokens/s': T / (ms / 1e3), 'TFLOP/s': tflops, '% f32 peak': (100 * tflops) / peak,
      'PyTorch H200 tokens/s': torch ? torch.tokens_per_s ?? (T / torch.ms) * 1e3 : '-',
      'of PyTorch': torch ? (T / (ms / 1e3)) / (torch.tokens_per_s ?? (T / torch.ms) * 1e3) : '-',
    });
  }
  const meta = runMeta(gpu);
  printTable(`prefill on ${meta.card}, driver ${meta.driver}, commit ${meta.commit}, ${meta.date} (${layers} layers, synthetic weights ` +
    `${(weights.bytes / 2 ** 30).toFixed(2)} GiB; wall clock incl. logits readback, median of the runs with min–max; PyTorch: bench/references/pytorch-transformers.json)`, rows);
  const file = writeJson(`prefill-${gpu.matmulOnMatrices ? 'subgroup-matrix' : 'f32'}`, { ...meta, adapter: info, config: configPath, layers, peakTflops: peak, matmulEngine: gpu.matmulOnMatrices ? 'subgroup-matrix' : 'f32', matmul: matmulRows, prefill: rows });
  console.log(`\nwrote ${file}`);
  model.dispose();
  gpu.dispose();
}

main().catch((err: unknown) => failStart('bench:prefill', err));
