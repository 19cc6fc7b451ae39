// The small one-workgroup kernels of a batch-1 decode step, each alone: a dependent chain of N dispatches of it in
// one recorded run (as bench/dispatch.ts, whose `touch` chain is the floor: a dispatch that does nothing), so each
// kernel's time a dispatch is the slope from 1 to N dispatches, and its own work is that minus touch's. These
// kernels move a few KB: what bounds them is latency (dependent loads, barriers), not bytes, so their ceiling is
// the empty dispatch. Kernels: the sampler over one 102,400-logit row (alone, after the row-stats pass, greedy and
// top-p, with 256 threads and with the decode node's choice; the spread sampler's whole call, its dispatches
// together, for one row and for 64 rows of the same logits), the
// MoE selection and grouping of one token (V2-Lite routing: one dispatch, and its two parts apart).
//   node bench/dist/decode-kernels.js
// Env: BENCH_RUNS (7)  BENCH_DISPATCHES (1,64,256)  BENCH_CONFIG (V2-Lite)  BENCH_CARD / BENCH_DRIVER / BENCH_COMMIT
//      plus the GPU settings (DAWN_DISABLED_FEATURES=timestamp_quantization for unrounded timestamps).
import { readFileSync } from 'node:fs';
import { Gpu, gpuOptions, RUN_PROFILE_LABEL, type KernelProgram } from '@latentwire/gpu';
import { normalizeConfig } from '@latentwire/model';
import {
  moeGroup, moeRouteSelect, moeRouting, moeScratchBytes, moeSelectGroup, packSamplingParams, sampleRowStats, sampleRowStatsBytes, sampleSearches, sampleSpread,
  sampleSpreadScratchBytes, sampleSpreadWorkgroups, sampleTokens, sampleWorkgroupSize, type SamplingParams,
  type MoeDims,
} from '@latentwire/gpu/kernels';
import { randomArray } from '@latentwire/testing';
import { benchEnv } from './lib/env.js';
import { touch } from './lib/bench-kernels.js';
import { printTable, runMeta, spread, writeJson, type Row } from './lib/report.js';

async function main(): Promise<void> {
  const e = benchEnv(process.env);
  const lengths = [...new Set(e.BENCH_DISPATCHES ?? [1, 64, 256])].sort((a, b) => a - b);
  if (lengths.length < 2) throw new RangeError('BENCH_DISPATCHES: give at least two chain lengths (the slope needs two)');
  const gpu = await Gpu.create({ ...gpuOptions(e), profile: 'runs' });
  const profiler = gpu.profiler;
  if (!profiler) throw new Error('decode-kernels bench: the adapter has no timestamp queries');
  const runs = Math.max(5, e.BENCH_RUNS);
  const cfg = normalizeConfig(JSON.parse(readFileSync(e.BENCH_CONFIG, 'utf8')), e.BENCH_CONFIG);
  const moe = cfg.moe;
  if (!moe) throw new Error(`${e.BENCH_CONFIG} has no MoE layers`);
  const V = cfg.vocabSize;

  // the sampler's inputs: one row of logits, greedy (the decode bench's setting) and top-p sampling
  const logits = gpu.upload('logits', Float32Array.from(randomArray(V, 1, 4)));
  const stats = gpu.buffer('stats', sampleRowStatsBytes(1, V));
  const greedy = gpu.upload('greedy', packSamplingParams([{ temperature: 0, topK: 0, topP: 1, seed: 1, counter: 0 }]));
  const topP = gpu.upload('top_p', packSamplingParams([{ temperature: 0.7, topK: 0, topP: 0.9, seed: 1, counter: 0 }]));
  const token = gpu.buffer('token', 4);
  // the spread sampler (the decode node's for sampled rows): 64 rows of the same logits at most
  const many = 64;
  const settings: Record<string, SamplingParams> = {
    'temperature 0.7': { temperature: 0.7, topK: 0, topP: 1, seed: 1, counter: 0 },
    'top_p 0.9': { temperature: 0.7, topK: 0, topP: 0.9, seed: 1, counter: 0 },
    'top_k 50, top_p 0.9': { temperature: 0.7, topK: 50, topP: 0.9, seed: 1, counter: 0 },
  };
  const spreadParams = Object.fromEntries(Object.entries(settings).map(([k, p]) => [k, gpu.upload(k, packSamplingParams(Array.from({ length: many }, (_, c) => ({ ...p, counter: c }))))]));
  const manyStats = gpu.buffer('stats.many', sampleRowStatsBytes(many, V));
  const spreadScratch = gpu.buffer('spread.scratch', sampleSpreadScratchBytes(many, V));
  const manyTokens = gpu.buffer('tokens.many', many * 4);
  // the decode node's budget of search workgroups, past which a workgroup takes several chunks
  const budget = sampleSpreadWorkgroups(gpu.workgroupSlots.slots);
  const spreadSampler = (name: string, rows: number, maxWorkgroups = budget): KernelProgram[] => sampleSpread({
    logits, params: spreadParams[name]!, out: manyTokens, rows, vocab: V, rowStride: 0, stats: manyStats, scratch: spreadScratch,
    searches: sampleSearches([settings[name]!], V), maxWorkgroups,
  });
  // one token's routing: random router logits, the shared experts routed with the others (the decode node's form)
  const dims: MoeDims = { nExperts: moe.nRoutedExperts, topK: moe.numExpertsPerTok, hidden: cfg.hiddenSize, intermediate: moe.moeIntermediateSize, sharedExperts: moe.nSharedExperts };
  const sizes = moeScratchBytes(dims, 1);
  const scratch = {
    logits: gpu.upload('router_logits', Float32Array.from(randomArray(moe.nRoutedExperts, 2, 2))),
    topkIds: gpu.buffer('topk_ids', sizes.topkIds), topkWeights: gpu.buffer('topk_weights', sizes.topkWeights),
    groups: gpu.buffer('groups', sizes.groups), act: gpu.buffer('act', 4), slotOut: gpu.buffer('slot_out', 4),
  };
  const routing = moeRouting(moe);
  const subgroupSize = gpu.matmulLimits.subgroupSize;
  const touched = gpu.buffer('touch', 256 * 4);
  // the sampler's threads a row in the decode node (1024 where the device holds them)
  const wide = sampleWorkgroupSize(gpu.limits);
  const kernels: [string, () => KernelProgram[]][] = [
    ['touch (the floor)', () => [touch(touched, 1)]],
    ['sample_tokens greedy, row scan', () => [sampleTokens({ logits, params: greedy, out: token, rows: 1, vocab: V })]],
    ['sample_row_stats', () => [sampleRowStats({ logits, stats, rows: 1, vocab: V })]],
    ['sample_tokens greedy, from row stats', () => [sampleTokens({ logits, params: greedy, out: token, rows: 1, vocab: V, stats })]],
    ['sample_tokens top_p 0.9, row scan', () => [sampleTokens({ logits, params: topP, out: token, rows: 1, vocab: V })]],
    [`sample_tokens top_p 0.9, from row stats, ${wide} threads`, () => [sampleTokens({ logits, params: topP, out: token, rows: 1, vocab: V, stats, workgroupSize: wide })]],
    [`sample_tokens top_k 50, top_p 0.9, from row stats, ${wide} threads`, () => [
      sampleTokens({ logits, params: spreadParams['top_k 50, top_p 0.9']!, out: token, rows: 1, vocab: V, stats, workgroupSize: wide })]],
    ...['top_p 0.9', 'top_k 50, top_p 0.9'].map((name): [string, () => KernelProgram[]] => [`sample_tokens ${name}, from row stats, ${wide} threads, ${many} rows`, () => [
      sampleRowStats({ logits, stats: manyStats, rows: many, vocab: V, rowStride: 0 }),
      sampleTokens({ logits, params: spreadParams[name]!, out: manyTokens, rows: many, vocab: V, rowStride: 0, stats: manyStats, workgroupSize: wide })]]),
    ...Object.keys(settings).flatMap((name) => (name.startsWith('temperature') ? [1, many] : [1, 8, 16, 32, many]).map((rows): [string, () => KernelProgram[]] =>
      [`spread sampler ${name}${rows > 1 ? `, ${rows} rows` : ''} (a call: ${spreadSampler(name, rows).length} dispatches)`, () => spreadSampler(name, rows)])),
    // a chunk a workgroup whatever the rows (no budget)
    ...Object.keys(settings).filter((name) => !name.startsWith('temperature')).map((name): [string, () => KernelProgram[]] =>
      [`spread sampler ${name}, ${many} rows, a chunk a workgroup`, () => spreadSampler(name, many, many * V)]),
    ['moe_select_group (1 token)', () => [moeSelectGroup({ dims, routing, tokens: 1, scratch, bias: null, variant: 'gemv1', subgroupSize })]],
    ['moe_route_select (1 token)', () => [moeRouteSelect({ routing, logits: scratch.logits, bias: null, topkIds: scratch.topkIds, topkWeights: scratch.topkWeights, tokens: 1, sharedExperts: dims.sharedExperts })]],
    ['moe_group (1 token)', () => [moeGroup({ dims, tokens: 1, topkIds: scratch.topkIds, groups: scratch.groups, variant: 'gemv1', subgroupSize })]],
  ];
  console.log(`${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description || gpu.adapterInfo.device}; chains ${lengths.join(', ')}, ${runs} runs`);

  const rows: Row[] = [];
  let floor = NaN;
  for (const [name, programs] of kernels) {
    const medians: number[] = [];
    const spreads: string[] = [];
    for (const n of lengths) {
      const rec = await gpu.record(Array.from({ length: n }, () => programs()).flat(), `chain.${n}`);
      try {
        const g: number[] = [];
        for (let r = 0; r < runs + 2; r++) {
          profiler.reset();
          await gpu.run([rec]);
          await gpu.sync();
          if (r < 2) continue; // warm-up: clocks up, pipelines resident
          g.push(profiler.report().find((x) => x.label === RUN_PROFILE_LABEL)?.ms ?? NaN);
        }
        const s = spread(g);
        medians.push(s.median);
        spreads.push(`${(s.min * 1e3).toFixed(1)}–${(s.max * 1e3).toFixed(1)}`);
      } finally {
        rec.dispose();
      }
    }
    const span = lengths[lengths.length - 1]! - lengths[0]!;
    const per = ((medians[medians.length - 1]! - medians[0]!) / span) * 1e3;
    if (Number.isNaN(floor)) floor = per;
    rows.push({
      kernel: name, 'µs a dispatch': per, 'µs beyond an empty dispatch': per - floor,
      [`GPU µs of ${lengths[lengths.length - 1]}`]: medians[medians.length - 1]! * 1e3, 'min–max': spreads[spreads.length - 1]!,
    });
    console.log(JSON.stringify(rows[rows.length - 1]));
  }
  const meta = runMeta(gpu);
  printTable(`one-workgroup decode kernels on ${meta.card}, commit ${meta.commit}: dependent chains in one recorded run, median of ${runs} runs; ` +
    `'a dispatch' = slope from ${lengths[0]} to ${lengths[lengths.length - 1]} dispatches; the ceiling is the empty dispatch (touch)`, rows);
  console.log(`\nwrote ${writeJson('decode-kernels', { ...meta, runs, lengths, rows })}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
