// Whole decode steps (decode-node's DecodeModel: weight-absorbed MLA, grouped kernel over the paged cache,
// MoE, LM head, GPU sampling) at DeepSeek-V2-Lite shapes with synthetic bf16 weights. Per (batch, context,
// cache dtype): step time, tokens/s, dispatches per step, and the bytes-per-step roofline — every weight a step must read (all
// dense weights, the routed experts B tokens are expected to touch, the LM head) plus the batch's KV rows —
// over the card's read bandwidth, measured at the start of the run (bench/lib/read-bandwidth); fraction =
// roofline time / measured time. Where the adapter has subgroup matrices, every row runs with both grouped
// attention kernels (portable f32 and tensor-core), side by side in the same run. Where the adapter has
// timestamps, each timed step's GPU time (its one pass) is printed beside its wall clock. `CPU submit ms`: the
// median over the timed steps of DecodeModel.step's time to its submit (a mean until 12-07, which one slow step of
// ~60 ms could lift above the median step time).
//   node bench/dist/decode.js
// Env: BENCH_BATCHES (1,16,64)  BENCH_CONTEXTS (1024,4096)  BENCH_DTYPES (fp8_e4m3,bf16)  BENCH_ATTENTION (every kernel)
//      BENCH_FUSED_MERGE_MAX_SPLITS (the engine's)  BENCH_KV_SPLITS (the engine's DECODE_KV_SPLITS)  PAGE_SIZE (64)
//      BENCH_SAMPLE_ROW_STATS (1: the sampler's first pass over many workgroups a row, as the decode node; 0: one)
//      BENCH_SAMPLING (greedy; top-p: temperature 0.7, top_p 0.9; top-k-p: and top_k 50)
//      BENCH_SAMPLE_SPREAD (1: sampled rows drawn by the spread sampler, as the decode node; 0: one workgroup a row)
//      BENCH_SHARED_ROUTED (1: the shared experts with the routed ones, as the decode node; 0: their own MLP; 1,0: both)
//      BENCH_LAYERS (all; 2 on software adapters)  BENCH_ITERS (10; 2 on software)
//      BENCH_CONFIG (a config.json)  BENCH_CARD / BENCH_DRIVER / BENCH_COMMIT (recorded)  plus the GPU settings.
import { readFileSync } from 'node:fs';
import { Gpu, gpuOptions, RUN_PROFILE_LABEL } from '@latentwire/gpu';
import { normalizeConfig, type MlaConfig, type RopeFreqPrecision } from '@latentwire/model';
import { failStart, latentKvLayout, pagesFor, type KvDtype } from '@latentwire/protocol';
import { DecodeModel } from '@latentwire/decode-node';
import { syntheticSteps } from './lib/step-input.js';
import { syntheticWeights } from '@latentwire/gpu/weights';
import type { ModelWeights } from '@latentwire/gpu/weights';
import { benchEnv } from './lib/env.js';
import { isSoftwareAdapter, printTable, runMeta, spread, writeJson, type Row } from './lib/report.js';
import { measureReadBandwidth } from './lib/read-bandwidth.js';
import { mmaUnsupportedReason } from '@latentwire/decode-node/kernels/grouped-decode-attention';

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
  // GPU_PROFILE=1: per-kernel tables (each dispatch in its own timestamped pass, which slows the step); else the
  // timestamps of each step's one pass give its GPU time beside its wall clock
  const gpu = await Gpu.create({ ...gpuOptions(env), profile: env.GPU_PROFILE ? true : 'runs' });
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
  const hbm = await measureReadBandwidth(gpu, 5);
  const peakGBps = hbm.gbps;
  const available = mmaUnsupportedReason(gpu.matrixCapabilities) === null ? (['f32', 'subgroup-matrix'] as const) : (['f32'] as const);
  const engines = available.filter((e) => env.BENCH_ATTENTION?.includes(e) ?? true);
  if (engines.length === 0) throw new RangeError(`BENCH_ATTENTION: none of ${env.BENCH_ATTENTION} runs on this adapter (it runs ${available.join(', ')})`);
  console.log(`adapter: ${info.vendor} ${info.description || info.device}; ${configPath.split('/').pop()} with ${layers} of ${base.numLayers} layers; ` +
    `ceiling: read ${peakGBps.toFixed(0)} GB/s (${hbm.min.toFixed(0)}–${hbm.max.toFixed(0)}, ${hbm.timing}); attention kernels ${engines.join(', ')}; ` +
    `full workgroup slots ${JSON.stringify(gpu.workgroupSlots)}`);

  // one set of weights with the shared experts' copy among the routed ones (as the decode node loads them); the
  // rows that run the shared MLP instead see the same buffers with routedShared 0
  const routedWeights = await syntheticWeights(gpu, cfg, 1, { routeSharedExperts: true });
  const ownMlpWeights: ModelWeights = {
    ...routedWeights, layers: routedWeights.layers.map((l) => (l.mlp.kind === 'moe' ? { ...l, mlp: { ...l.mlp, routedShared: 0 } } : l)),
  };
  const rows: Row[] = [];
  for (const sharedRouted of env.BENCH_SHARED_ROUTED) for (const engine of engines) for (const dtype of dtypes) {
    const weights = sharedRouted ? routedWeights : ownMlpWeights;
    const layout = latentKvLayout({ kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize, dtype });
    for (const ctx of contexts) {
      const maxB = Math.max(...batches);
      const perSeq = pagesFor(layout, ctx + 2 * iters + 3);
      const model = await DecodeModel.create(gpu, cfg, weights, {
        maxBatch: maxB, maxContext: perSeq * pageSize, pageSize, kvDtype: dtype, numPages: maxB * perSeq, ropeFreqPrecision, attentionEngine: engine,
        fusedMergeMaxSplits: env.BENCH_FUSED_MERGE_MAX_SPLITS, kvSplits: env.BENCH_KV_SPLITS, sampleRowStats: env.BENCH_SAMPLE_ROW_STATS, sampleSpread: env.BENCH_SAMPLE_SPREAD,
      });
      for (const B of batches) {
        const input = syntheticSteps(B, ctx, perSeq, cfg.vocabSize, env.BENCH_SAMPLING);
        // compiles every pipeline; its logits must be finite: a kernel that makes NaNs (the first subgroup-matrix
        // attention did on this bench's zero-filled cache) routes every token to the same experts, which times a
        // different (cheaper) MoE than real data would
        const first = await model.step({ ...input(0), returnLogits: true });
        const finite = first.logits!.every((v) => Number.isFinite(v));
        if (!finite) console.error(`WARNING: ${engine} ${dtype} batch ${B} context ${ctx}: non-finite logits; this row does not time real work`);
        gpu.profiler?.reset();
        const dispatches0 = gpu.dispatches;
        const submitMs: number[] = [];
        const stepMs: number[] = [];
        for (let i = 1; i <= iters; i++) {
          const t = performance.now();
          submitMs.push((await model.step(input(i))).timings.submitMs);
          stepMs.push(performance.now() - t);
        }
        const dispatchesPerStep = (gpu.dispatches - dispatches0) / iters;
        // the timed steps' kernels only (the overlapped steps below would add their own)
        const profile = env.GPU_PROFILE ? gpu.profiler?.report() : undefined;
        const runs = env.GPU_PROFILE ? undefined : gpu.profiler?.report().find((r) => r.label === RUN_PROFILE_LABEL);
        const one = spread(stepMs);
        const ms = one.median;
        // as the engine runs: step i+1 is built and submitted (fed step i's tokens on the GPU) before step i is read
        const sameRows = Array.from({ length: B }, (_, b) => b);
        if (gpu.profiler) gpu.profiler.paused = true; // its readback would wait for each step before the next is submitted
        let prev = await model.submitStep(input(iters + 1));
        const gaps: number[] = [];
        let last = performance.now();
        for (let i = iters + 2; i <= 2 * iters + 1; i++) {
          const next = await model.submitStep({ ...input(i), fromPrevious: sameRows });
          await prev.tokens;
          gaps.push(performance.now() - last); // time between consecutive steps' tokens: the steady step time
          last = performance.now();
          prev = next;
        }
        await prev.tokens;
        if (gpu.profiler) gpu.profiler.paused = false;
        const over = spread(gaps);
        const overlappedMs = over.median;
        if (profile) {
          const gpuMs = profile.reduce((a, r) => a + r.ms, 0) / iters;
          printTable(`GPU time per step by kernel (${dtype}, batch ${B}, context ${ctx}): ${gpuMs.toFixed(2)} ms of ${ms.toFixed(2)} ms`,
            profile.map((r) => ({ kernel: r.label, 'ms/step': r.ms / iters, 'dispatches/step': r.count / iters })));
        }
        const kvBytes = B * (ctx + 1) * layout.tokenBytes * cfg.numLayers;
        const bytes = weightBytesPerStep(cfg, B) + kvBytes;
        const rooflineMs = (bytes / (peakGBps * 1e9)) * 1e3;
        rows.push({
          attention: engine, 'shared experts': sharedRouted ? 'routed' : 'own MLP', sampling: env.BENCH_SAMPLING, dtype, batch: B, context: ctx, 'step ms': ms, 'step min–max': `${one.min.toFixed(2)}–${one.max.toFixed(2)}`, 'CPU submit ms': spread(submitMs).median, 'dispatches/step': dispatchesPerStep, 'GPU ms/step': runs ? runs.ms / iters : '', 'overlapped step ms': overlappedMs, 'overlapped min–max': `${over.min.toFixed(2)}–${over.max.toFixed(2)}`,
          'overlapped tokens/s': (B * 1e3) / overlappedMs, 'tokens/s': (B * 1e3) / ms, 'MB/step': bytes / 1e6, 'KV MB': kvBytes / 1e6,
          'roofline ms': rooflineMs, 'roofline tok/s': (B * 1e3) / rooflineMs, '% roofline': (100 * rooflineMs) / Math.min(ms, overlappedMs),
          'logits finite': String(finite),
        });
        console.log(JSON.stringify(rows[rows.length - 1]));
      }
      model.release();
    }
  }
  const meta = runMeta(gpu);
  printTable(`decode steps on ${meta.card}, driver ${meta.driver}, commit ${meta.commit}, ${meta.date} (${layers} layers, synthetic bf16 weights; ` +
    `wall clock per step incl. the token readback, median of ${iters} steps with min–max; ceiling read ${peakGBps.toFixed(0)} GB/s measured)`, rows);
  const file = writeJson('decode', { ...meta, adapter: info, config: configPath, layers, pageSize, hbm, rows });
  console.log(`\nwrote ${file}`);
  gpu.dispose();
}

main().catch((err: unknown) => failStart('bench:decode', err));
