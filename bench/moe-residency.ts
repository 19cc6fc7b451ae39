// How many workgroups of the routed experts' decode kernels run at once: the question behind their ~2 TB/s
// (README, routed experts). Each kernel's workgroup does the same work whatever the batch (one 16-row tile of
// one expert, 64 columns, all of K), so its time against the number of workgroups launched is flat while they
// all fit on the card at once and grows by one workgroup's time per `resident` workgroups past that:
//   time(W) ≈ L · ceil(W / resident), L the time one workgroup takes.
// Per count of experts touched E' (6..64, each given ~8 rows: one tile), the bench routes T = E'·8/k tokens
// round-robin over the first E' experts (distinct within a token), and times the gate/up and the down dispatches
// alone, in the form the engine runs at batch 64 for every count (GPU timestamps, median of BENCH_RUNS runs). It
// prints workgroups, ms, the weight bytes' GB/s, and per kernel the fit: L from the fewest workgroups, the slope
// over the most, resident ≈ L / slope (the workgroups that run at once). The ceiling: the bytes at the card's
// read rate, measured first in the same run.
//   node bench/dist/moe-residency.js
// Env: BENCH_CONFIG  BENCH_RUNS (7)  BENCH_RUN_MS (20)  BENCH_CARD, BENCH_DRIVER, BENCH_COMMIT  plus the GPU settings.
import { readFileSync } from 'node:fs';
import { normalizeConfig } from '@latentwire/model';
import { Gpu, gpuOptions, type KernelProgram } from '@latentwire/gpu';
import { moeExperts, moeGemmVariant, moeScratchBytes, type MoeDims, type MoeExpertWeights } from '@latentwire/gpu/kernels';
import { benchEnv } from './lib/env.js';
import { isSoftwareAdapter, printTable, runMeta, writeJson, type Row } from './lib/report.js';
import { measureReadBandwidth } from './lib/read-bandwidth.js';
import { timeRuns } from './lib/time-runs.js';
import { syntheticExperts } from './lib/moe-inputs.js';

/** Rows each touched expert gets: one 16-row tile. */
const ROWS_PER_EXPERT = 8;

/** T tokens each on k distinct experts of the first `touched`, round-robin (every expert about T·k/touched rows). */
function roundRobin(tokens: number, k: number, touched: number): { ids: Uint32Array; weights: Float32Array } {
  const ids = new Uint32Array(tokens * k), weights = new Float32Array(tokens * k).fill(1 / k);
  for (let i = 0; i < tokens * k; i++) ids[i] = i % touched;
  return { ids, weights };
}

/**
 * L (the fewest workgroups' ms), the slope (ms per workgroup, least squares over the upper half of the counts, at
 * least two) and L / slope; null with fewer than three counts.
 */
function fit(points: readonly { workgroups: number; ms: number }[]): { fewestMs: number; msPerWorkgroup: number; resident: number } | null {
  if (points.length < 3) return null;
  const sorted = [...points].sort((a, b) => a.workgroups - b.workgroups);
  const upper = sorted.slice(Math.min(Math.floor(sorted.length / 2), sorted.length - 2));
  const mx = upper.reduce((s, p) => s + p.workgroups, 0) / upper.length, my = upper.reduce((s, p) => s + p.ms, 0) / upper.length;
  const slope = upper.reduce((s, p) => s + (p.workgroups - mx) * (p.ms - my), 0) / upper.reduce((s, p) => s + (p.workgroups - mx) ** 2, 0);
  return { fewestMs: sorted[0]!.ms, msPerWorkgroup: slope, resident: sorted[0]!.ms / slope };
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const gpu = await Gpu.create({ ...gpuOptions(env), profile: true });
  if (!gpu.profiler) throw new Error('moe-residency bench: the adapter has no timestamp queries');
  const cfg = normalizeConfig(JSON.parse(readFileSync(env.BENCH_CONFIG, 'utf8')), env.BENCH_CONFIG);
  if (!cfg.moe) throw new Error(`moe-residency bench: ${env.BENCH_CONFIG} has no routed experts`);
  const dims: MoeDims = { nExperts: cfg.moe.nRoutedExperts, topK: cfg.moe.numExpertsPerTok, hidden: cfg.hiddenSize, intermediate: cfg.moe.moeIntermediateSize };
  const { nExperts: E, topK: k, hidden: H, intermediate: I } = dims;
  const software = isSoftwareAdapter(gpu.adapterInfo);
  const counts = [...new Set((software ? [k, 2 * k, 3 * k] : [k, 8, 12, 16, 24, 32, 48, 64]).map((c) => Math.min(E, Math.max(k, c))))];
  const hbm = await measureReadBandwidth(gpu, 5);
  const fills: KernelProgram[] = [];
  const weights: MoeExpertWeights = {
    gate: syntheticExperts(gpu, 'gate', E, I, H, 1, fills, 'bf16'),
    up: syntheticExperts(gpu, 'up', E, I, H, 1 << 16, fills, 'bf16'),
    down: syntheticExperts(gpu, 'down', E, H, I, 1 << 17, fills, 'bf16'),
  };
  await gpu.run(fills);
  await gpu.sync();
  const runs = Math.max(5, env.BENCH_RUNS);
  // one form for every count, so the counts differ only in workgroups
  const variant = moeGemmVariant(dims, 64, gpu.matmulLimits.subgroupMatrix, gpu.matmulLimits.moeMmaMinRows);
  const rows: Row[] = [];
  const points: Record<'gate/up' | 'down', { workgroups: number; ms: number }[]> = { 'gate/up': [], down: [] };
  for (const touched of counts) {
    const T = Math.max(1, Math.round((touched * ROWS_PER_EXPERT) / k));
    const need = moeScratchBytes(dims, T);
    const scratch = {
      topkIds: gpu.buffer('topk_ids', need.topkIds), topkWeights: gpu.buffer('topk_weights', need.topkWeights),
      groups: gpu.buffer('groups', need.groups), act: gpu.buffer('act', need.act), slotOut: gpu.buffer('slot_out', need.slotOut),
    };
    const routing = roundRobin(T, k, touched);
    gpu.write(scratch.topkIds, routing.ids);
    gpu.write(scratch.topkWeights, routing.weights);
    const x = gpu.upload('x', Float32Array.from({ length: T * H }, (_, i) => Math.sin(i * 0.7)));
    const out = gpu.buffer('out', T * H * 4);
    const programs = moeExperts({ dims, tokens: T, x, weights, scratch, out, variant });
    await gpu.run(programs);   // the grouping the halves read
    for (const half of ['gate/up', 'down'] as const) {
      const prefix = half === 'gate/up' ? 'moe_gate_up' : 'moe_down';
      const mine = programs.filter((p) => p.shader.label.startsWith(prefix));
      // real workgroups: one row tile an expert (ROWS_PER_EXPERT ≤ any tile height) times the column blocks;
      // the grid's others exit after two reads
      const columnBlocks = mine.reduce((s, p) => s + (p.workgroups[1] ?? 1), 0) / mine.length;
      const workgroups = touched * columnBlocks;
      const t = await timeRuns(gpu, mine, runs, env.BENCH_RUN_MS);
      const bytes = touched * (half === 'gate/up' ? 2 : 1) * H * I * 2;
      points[half].push({ workgroups, ms: t.med });
      const row: Row = {
        kernel: half, form: variant, 'experts touched': touched, tokens: T, workgroups, 'ms median': t.med,
        'ms min–max': `${t.min.toPrecision(3)}–${t.max.toPrecision(3)}`, 'GB/s': bytes / (t.med * 1e6), 'ceiling ms': (bytes / (hbm.gbps * 1e9)) * 1e3,
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
    gpu.destroy(x, out, ...Object.values(scratch));
  }
  const fits = Object.fromEntries(Object.entries(points).map(([half, p]) => [half, fit(p)]));
  const meta = runMeta(gpu);
  printTable(`routed experts' decode kernels by workgroups launched, on ${meta.card}, commit ${meta.commit}: GPU timestamps, median of ${runs} runs; ` +
    `ceiling = the weight bytes at the measured read rate (${hbm.gbps.toFixed(0)} GB/s)`, rows);
  for (const [half, f] of Object.entries(fits)) {
    console.log(f === null ? `${half}: too few counts to fit` : `${half}: ${(f.fewestMs * 1e3).toFixed(1)} µs at the fewest workgroups, ` +
      `${(f.msPerWorkgroup * 1e6).toFixed(1)} ns a workgroup over the most: ~${f.resident.toFixed(0)} resident ` +
      `(${(f.resident / gpu.workgroupSlots.slots).toFixed(1)} per full slot; ${gpu.workgroupSlots.slots} slots)`);
  }
  const file = writeJson('moe-residency', { ...meta, config: env.BENCH_CONFIG, dims, hbm, slots: gpu.workgroupSlots, fits, rows });
  console.log(`\nwrote ${file}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
