// Whole decode steps (decode-node's DecodeModel: weight-absorbed MLA, grouped kernel over the paged cache,
// MoE, LM head, GPU sampling) at DeepSeek-V2-Lite shapes with synthetic bf16 weights. Per (batch, context,
// cache dtype): step time, tokens/s, and the bytes-per-step roofline — every weight a step must read (all
// dense weights, the routed experts B tokens are expected to touch, the LM head) plus the batch's KV rows —
// over PEAK_GBPS; fraction = roofline time / measured time.
//   node bench/dist/decode.js
// Env: BENCH_BATCHES (1,16,64)  BENCH_CONTEXTS (1024,4096)  BENCH_DTYPES (fp8_e4m3,bf16)  PAGE_SIZE (64)
//      BENCH_LAYERS (all; 2 on software adapters)  BENCH_ITERS (10; 2 on software)  PEAK_GBPS (3350, H100 SXM HBM3)
//      BENCH_CONFIG (a config.json)  plus the GPU settings (gpuOptionsFromEnv).
import { readFileSync } from 'node:fs';
import { Gpu } from '@latentwire/gpu';
import { gpuOptions } from '@latentwire/gpu';
import { normalizeConfig, type MlaConfig, type RopeFreqPrecision } from '@latentwire/model';
import { failStart, latentKvLayout, pagesFor, type KvDtype } from '@latentwire/protocol';
import { DecodeModel } from '@latentwire/decode-node';
import { syntheticWeights } from '@latentwire/gpu/weights';
import type { ModelWeights } from '@latentwire/gpu/weights';
import { benchEnv } from './lib/env.js';
import { isSoftwareAdapter, printTable, writeJson, type Row } from './lib/report.js';



/** Bytes of weights one step reads at batch B (routed experts: the expected number B tokens touch). */
function weightBytesPerStep(cfg: MlaConfig, B: number): number {
  const H = cfg.hiddenSize, heads = cfg.numHeads, r = cfg.kvLoraRank, bf16 = 2;
  let params = 0;
  for (let l = 0; l < cfg.numLayers; l++) {
    const q = cfg.qLoraRank === null ? heads * (cfg.qkNopeHeadDim + cfg.qkRopeHeadDim) * H
      : cfg.qLoraRank * H + heads * (cfg.qkNopeHeadDim + cfg.qkRopeHeadDim) * cfg.qLoraRank;
    // kv_a, kv_b (read as W_UK in place) + the W_UVᵀ copy, o_proj
    params += q + (r + cfg.qkRopeHeadDim) * H + heads * cfg.qkNopeHeadDim * r + heads * cfg.vHeadDim * r + H * heads * cfg.vHeadDim;
    const moe = cfg.moe;
    if (moe && l >= moe.firstKDenseReplace) {
      const E = moe.nRoutedExperts, k = moe.numExpertsPerTok;
      const touched = E * (1 - (1 - k / E) ** B);
      params += 3 * H * moe.moeIntermediateSize * (touched + moe.nSharedExperts) + E * H;
    } else {
      params += 3 * H * cfg.intermediateSize;
    }
  }
  params += H * cfg.vocabSize; // LM head
  return params * bf16;
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const configPath = env.BENCH_CONFIG;
  const gpu = await Gpu.create(gpuOptions(env));
  const ropeFreqPrecision = env.ROPE_FREQ_PRECISION;
  const info = gpu.adapterInfo;
  const software = isSoftwareAdapter(info);
  const base = normalizeConfig(JSON.parse(readFileSync(configPath, 'utf8')), configPath);
  const layers = env.BENCH_LAYERS ?? (software ? 2 : base.numLayers);
  const cfg: MlaConfig = { ...base, numLayers: layers, vocabSize: software ? Math.min(base.vocabSize, 16384) : base.vocabSize };
  const batches = env.BENCH_BATCHES ?? (software ? [1, 4] : [1, 16, 64]);
  const contexts = env.BENCH_CONTEXTS ?? (software ? [256] : [1024, 4096]);
  const dtypes = env.BENCH_DTYPES;
  const pageSize = env.PAGE_SIZE;
  const iters = env.BENCH_ITERS ?? (software ? 2 : 10);
  const peakGBps = env.PEAK_GBPS;
  console.log(`adapter: ${info.vendor} ${info.description || info.device}; ${configPath.split('/').pop()} with ${layers} of ${base.numLayers} layers; ceiling ${peakGBps} GB/s`);

  const weights = await syntheticWeights(gpu, cfg);
  const rows: Row[] = [];
  for (const dtype of dtypes) {
    const layout = latentKvLayout({ kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize, dtype });
    for (const ctx of contexts) {
      const maxB = Math.max(...batches);
      const perSeq = pagesFor(layout, ctx + 2 * iters + 3);
      const model = await DecodeModel.create(gpu, cfg, weights, { maxBatch: maxB, maxContext: perSeq * pageSize, pageSize, kvDtype: dtype, numPages: maxB * perSeq, ropeFreqPrecision });
      for (const B of batches) {
        // the cache holds zeros (a finite, valid row in every dtype): the work per token is the same as real data
        const tables = Array.from({ length: B }, (_, b) => Array.from({ length: perSeq }, (_, i) => b * perSeq + i));
        const input = (i: number) => ({
          tokens: Array.from({ length: B }, (_, b) => (b * 7919 + i) % cfg.vocabSize),
          positions: Array.from({ length: B }, () => ctx + i),
          pageTables: tables,
          sampling: Array.from({ length: B }, (_, b) => ({ temperature: 0, topK: 0, topP: 1, seed: b, counter: i })),
        });
        await model.step(input(0)); // compiles every pipeline
        gpu.profiler?.reset();
        let submitMs = 0;
        const t0 = performance.now();
        for (let i = 1; i <= iters; i++) submitMs += (await model.step(input(i))).timings.submitMs;
        const ms = (performance.now() - t0) / iters;
        // as the engine runs: step i+1 is built and submitted (fed step i's tokens on the GPU) before step i is read
        const sameRows = Array.from({ length: B }, (_, b) => b);
        let prev = await model.submitStep(input(iters + 1));
        const t1 = performance.now();
        for (let i = iters + 2; i <= 2 * iters + 1; i++) {
          const next = await model.submitStep({ ...input(i), fromPrevious: sameRows });
          await prev.tokens;
          prev = next;
        }
        await prev.tokens;
        const overlappedMs = (performance.now() - t1) / iters;
        if (gpu.profiler) {
          const report = gpu.profiler.report();
          const gpuMs = report.reduce((a, r) => a + r.ms, 0) / iters;
          printTable(`GPU time per step by kernel (${dtype}, batch ${B}, context ${ctx}): ${gpuMs.toFixed(2)} ms of ${ms.toFixed(2)} ms`,
            report.slice(0, 14).map((r) => ({ kernel: r.label, 'ms/step': r.ms / iters, 'dispatches/step': r.count / iters })));
        }
        const kvBytes = B * (ctx + 1) * layout.tokenBytes * cfg.numLayers;
        const bytes = weightBytesPerStep(cfg, B) + kvBytes;
        const rooflineMs = (bytes / (peakGBps * 1e9)) * 1e3;
        rows.push({
          dtype, batch: B, context: ctx, 'step ms': ms, 'CPU submit ms': submitMs / iters, 'overlapped step ms': overlappedMs,
          'overlapped tokens/s': (B * 1e3) / overlappedMs, 'tokens/s': (B * 1e3) / ms, 'MB/step': bytes / 1e6, 'KV MB': kvBytes / 1e6,
          'roofline ms': rooflineMs, 'roofline tok/s': (B * 1e3) / rooflineMs, '% roofline': (100 * rooflineMs) / Math.min(ms, overlappedMs),
        });
        console.log(JSON.stringify(rows[rows.length - 1]));
      }
      model.release();
    }
  }
  printTable(`decode steps (${layers} layers, synthetic bf16 weights; wall clock per step incl. the token readback)`, rows);
  const file = writeJson('decode', { adapter: info, config: configPath, layers, pageSize, peakGBps, rows });
  console.log(`\nwrote ${file}`);
  gpu.dispose();
}

main().catch((err: unknown) => failStart('bench:decode', err));
