// The routed experts alone (shared/gpu/src/kernels/moe: group, gate/up + silu·mul, down, combine) at a model's
// MoE shapes (default DeepSeek-V2-Lite: 64 experts top-6, hidden 2048, intermediate 1408), for decode-sized
// batches, every GEMM form the adapter runs side by side on the same weights and routing:
//   1. measures the card's read bandwidth (the ceiling: a layer must stream the weights of every expert its
//      batch touches once, so the ceiling time is those bytes over it);
//   2. synthetic bf16 (BENCH_EXPERT_DTYPE) expert weights generated on the GPU (in binding-sized chunks, as the model loads them);
//   3. per batch: each token's top-k distinct experts and weights drawn at random (seeded), the same for every
//      form; the experts touched counted from that routing;
//   4. per form: one layer's sequence timed by GPU timestamps, BENCH_RUNS runs (≥ 5), each the mean of enough
//      back-to-back layers to last ~BENCH_RUN_MS, median and min–max; then its gate/up and its down dispatches
//      alone (medians; their bytes are 2/3 and 1/3 of the touched experts'); its output checked against the
//      first form's (max |Δ| over max |y|).
//   node bench/dist/moe.js
// Env: BENCH_CONFIG  BENCH_BATCHES (1,16,64,128; software adapters 4)  BENCH_EXPERT_DTYPE (bf16; f16: the results go
//   to moe-f16.json)  BENCH_MOE_VARIANTS (the forms the adapter
//   runs)  BENCH_GATE_UP_SPLITS (gate/up K splits to time on the mma forms, below one row an expert)  BENCH_MOE_GROUP_TILES
//   (the mma forms' workgroups in groups of that many row tiles, a row each; 0: tiles first)  BENCH_RUNS (7)  BENCH_RUN_MS (20)  BENCH_CARD, BENCH_DRIVER, BENCH_COMMIT (recorded)  plus the GPU settings.
import { readFileSync } from 'node:fs';
import { normalizeConfig } from '@latentwire/model';
import { Gpu, gpuOptions, subgroupMatrixUnsupportedReason, type KernelProgram } from '@latentwire/gpu';
import {
  MOE_GEMM_VARIANTS, moeExperts, moeGemmVariant, moeScratchBytes, type MoeDims, type MoeExpertWeights, type MoeGemmVariant,
} from '@latentwire/gpu/kernels';
import { benchEnv } from './lib/env.js';
import { isSoftwareAdapter, printTable, runMeta, writeJson, type Row } from './lib/report.js';
import { measureReadBandwidth } from './lib/read-bandwidth.js';
import { timeRuns } from './lib/time-runs.js';
import { randomRouting, syntheticExperts } from './lib/moe-inputs.js';

/** The forms this adapter runs (the subgroup-matrix ones only where it has them). */
function formsOf(gpu: Gpu): MoeGemmVariant[] {
  const matrices = subgroupMatrixUnsupportedReason(gpu.matrixCapabilities) === null && gpu.matmulOnMatrices;
  return MOE_GEMM_VARIANTS.filter((v) => matrices || !v.startsWith('mma'));
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const gpu = await Gpu.create({ ...gpuOptions(env), profile: true });
  if (!gpu.profiler) throw new Error('moe bench: the adapter has no timestamp queries');
  const software = isSoftwareAdapter(gpu.adapterInfo);
  const cfg = normalizeConfig(JSON.parse(readFileSync(env.BENCH_CONFIG, 'utf8')), env.BENCH_CONFIG);
  if (!cfg.moe) throw new Error(`moe bench: ${env.BENCH_CONFIG} has no routed experts`);
  const dims: MoeDims = { nExperts: cfg.moe.nRoutedExperts, topK: cfg.moe.numExpertsPerTok, hidden: cfg.hiddenSize, intermediate: cfg.moe.moeIntermediateSize };
  const batches = env.BENCH_BATCHES ?? (software ? [4] : [1, 16, 64, 128]);
  const dtype = env.BENCH_EXPERT_DTYPE;
  const forms = env.BENCH_MOE_VARIANTS ?? formsOf(gpu);
  const { nExperts: E, hidden: H, intermediate: I } = dims;
  const hbm = await measureReadBandwidth(gpu, 5);
  console.log(`${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description || gpu.adapterInfo.device}; ${env.BENCH_CONFIG.split('/').pop()}: ` +
    `${E} experts top-${dims.topK}, hidden ${H}, intermediate ${I}, ${dtype} weights; ceiling: read ${hbm.gbps.toFixed(0)} GB/s (${hbm.min.toFixed(0)}–${hbm.max.toFixed(0)}, ${hbm.timing}); forms ${forms.join(', ')}`);

  const fills: KernelProgram[] = [];
  const weights: MoeExpertWeights = {
    gate: syntheticExperts(gpu, 'gate', E, I, H, 1, fills, dtype),
    up: syntheticExperts(gpu, 'up', E, I, H, 1 << 16, fills, dtype),
    down: syntheticExperts(gpu, 'down', E, H, I, 1 << 17, fills, dtype),
  };
  await gpu.run(fills);
  await gpu.sync();

  const rows: Row[] = [];
  for (const T of batches) {
    const need = moeScratchBytes(dims, T);
    const scratch = {
      topkIds: gpu.buffer('topk_ids', need.topkIds), topkWeights: gpu.buffer('topk_weights', need.topkWeights),
      groups: gpu.buffer('groups', need.groups), act: gpu.buffer('act', need.act), slotOut: gpu.buffer('slot_out', need.slotOut),
    };
    const routing = randomRouting(T, dims, 1000 + T);
    gpu.write(scratch.topkIds, routing.ids);
    gpu.write(scratch.topkWeights, routing.weights);
    const touched = new Set(routing.ids).size;
    const bytes = touched * 3 * H * I * 2;
    const ceilingMs = (bytes / (hbm.gbps * 1e9)) * 1e3;
    const x = gpu.upload('x', Float32Array.from({ length: T * H }, (_, i) => Math.sin(i * 0.7 + T)));
    let first: Float32Array | null = null;
    const splitsOf = (form: MoeGemmVariant) => (form.startsWith('mma') && T * dims.topK < E && env.BENCH_GATE_UP_SPLITS ? env.BENCH_GATE_UP_SPLITS : [undefined]);
    const groupsOf = (form: MoeGemmVariant) => (form.startsWith('mma') && env.BENCH_MOE_GROUP_TILES ? env.BENCH_MOE_GROUP_TILES : [undefined]);
    for (const [form, splits, group] of forms.flatMap((f) => splitsOf(f).flatMap((sp) => groupsOf(f).map((g) => [f, sp, g] as const)))) {
      const out = gpu.buffer('out', T * H * 4);
      try {
        const programs = moeExperts({
          dims, tokens: T, x, weights, scratch, out, variant: form, gateUpSplits: splits, matmulLimits: gpu.matmulLimits,
          ...(group !== undefined ? { groupTiles: { gateUp: group, down: group } } : {}),
        });
        const runs = Math.max(5, env.BENCH_RUNS);
        const t = await timeRuns(gpu, programs, runs, env.BENCH_RUN_MS);
        const y = await gpu.readF32(out, 0, T * H);
        // each half alone, on the grouping and activations the whole layer's runs left (the same routing)
        const half = async (prefix: string) => (await timeRuns(gpu, programs.filter((p) => p.shader.label.startsWith(prefix)), runs, env.BENCH_RUN_MS)).med;
        const gateUpMs = await half('moe_gate_up'), downMs = await half('moe_down');
        first ??= y;
        let diff = 0, top = 0;
        for (let i = 0; i < y.length; i++) {
          diff = Math.max(diff, Math.abs(y[i]! - first[i]!));
          top = Math.max(top, Math.abs(first[i]!));
        }
        const row: Row = {
          batch: T, form, 'gate/up splits': splits ?? 1, 'group tiles': group ?? 'default', 'default form': moeGemmVariant(dims, T, gpu.matmulLimits.subgroupMatrix, gpu.matmulLimits.moeMmaMinRows, gpu.matmulLimits) === form ? 'yes' : '',
          'experts touched': touched, 'MB of weights': bytes / 1e6, 'ms median': t.med, 'ms min–max': `${t.min.toPrecision(3)}–${t.max.toPrecision(3)}`,
          'GB/s': bytes / (t.med * 1e6), 'ceiling ms': ceilingMs, '% of ceiling': (100 * ceilingMs) / t.med,
          'gate/up ms': gateUpMs, 'gate/up GB/s': (bytes * 2) / 3 / (gateUpMs * 1e6), 'down ms': downMs, 'down GB/s': bytes / 3 / (downMs * 1e6),
          'max |Δ| / max |y| vs first form': top > 0 ? diff / top : diff, dispatches: programs.length,
        };
        rows.push(row);
        console.log(JSON.stringify(row));
      } finally {
        gpu.destroy(out);
      }
    }
    gpu.destroy(x, ...Object.values(scratch));
  }
  const meta = runMeta(gpu);
  printTable(`routed experts of one layer (group, gate/up, down, combine), ${dtype} weights, on ${meta.card}, commit ${meta.commit}: GPU timestamps, ` +
    `median of ${Math.max(5, env.BENCH_RUNS)} runs; ceiling = the touched experts' weight bytes at the measured read rate`, rows);
  const file = writeJson(dtype === 'bf16' ? 'moe' : `moe-${dtype}`, { ...meta, config: env.BENCH_CONFIG, dims, dtype, hbm, rows });
  console.log(`\nwrote ${file}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
