// What one dispatch costs on this adapter: the floor under a decode step of small kernels. At batch 1 a step is
// a few hundred dependent dispatches, each moving a few MB at most, so their count times this cost is most of
// the step (bench/decode.ts prints the step's dispatches). Chains of N `touch` dispatches (bench-kernels.ts: one
// f32 updated per thread) in one run, recorded once as the decode step's forward is, for
//   - dependent chains (every dispatch updates the same buffer, so each waits for the one before) and
//     independent ones (each its own buffer, nothing to wait for),
//   - 1 workgroup a dispatch, and a full wave of the adapter's workgroup slots,
// timed two ways: the GPU time of the run's one compute pass (timestamps, Gpu profile 'runs'), and the wall
// clock from the run's call to its completion (the CPU's encoding of the recorded dispatches included).
// Per dispatch = the slope between N = 1 and the longest chain, from the medians of BENCH_RUNS runs.
// The peer measured the same way is CUDA: bench/references/pytorch_dispatch.py times chains of the same tiny
// kernel launched one by one and replayed from a CUDA graph (SGLang's decode step), on the same card.
//   node bench/dist/dispatch.js
// Env: BENCH_RUNS (7)  BENCH_DISPATCHES (1,64,256,1024)  BENCH_CARD, BENCH_DRIVER, BENCH_COMMIT (recorded)
//      plus the GPU settings.
import { Gpu, gpuOptions, RUN_PROFILE_LABEL } from '@latentwire/gpu';
import { benchEnv } from './lib/env.js';
import { touch } from './lib/bench-kernels.js';
import { printTable, runMeta, spread, writeJson, type Row } from './lib/report.js';

/** Buffers the independent chains cycle through: far more than the GPU could run at once. */
const INDEPENDENT_BUFFERS = 64;

async function main(): Promise<void> {
  const e = benchEnv(process.env);
  const lengths = [...new Set(e.BENCH_DISPATCHES ?? [1, 64, 256, 1024])].sort((a, b) => a - b);
  if (lengths.length < 2) throw new RangeError('BENCH_DISPATCHES: give at least two chain lengths (the slope needs two)');
  const gpu = await Gpu.create({ ...gpuOptions(e), profile: 'runs' });
  const profiler = gpu.profiler;
  if (!profiler) throw new Error('dispatch bench: the adapter has no timestamp queries');
  const runs = Math.max(5, e.BENCH_RUNS);
  const slots = gpu.workgroupSlots.slots;
  const buffers = Array.from({ length: INDEPENDENT_BUFFERS }, (_, i) => gpu.buffer(`touch.${i}`, slots * 256 * 4));
  console.log(`${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description || gpu.adapterInfo.device}; a wave: ${slots} workgroup slots; chains ${lengths.join(', ')}`);

  const rows: Row[] = [];
  for (const dependent of [true, false]) {
    for (const workgroups of [...new Set([1, slots])]) {
      const gpuMs: number[] = [], wallMs: number[] = [];
      const perLength: Row[] = [];
      for (const n of lengths) {
        const chain = Array.from({ length: n }, (_, i) => touch(buffers[dependent ? 0 : i % INDEPENDENT_BUFFERS]!, workgroups));
        const rec = await gpu.record(chain, `touch.${n}`);
        try {
          const g: number[] = [], w: number[] = [];
          for (let r = 0; r < runs + 2; r++) {
            profiler.reset();
            const t0 = performance.now();
            await gpu.run([rec]);
            await gpu.sync();
            const wall = performance.now() - t0;
            const run = profiler.report().find((x) => x.label === RUN_PROFILE_LABEL);
            if (r < 2) continue; // warm-up: clocks up, pipeline and bind groups resident
            w.push(wall);
            g.push(run?.ms ?? NaN);
          }
          const gs = spread(g), ws = spread(w);
          gpuMs.push(gs.median);
          wallMs.push(ws.median);
          perLength.push({
            chain: dependent ? 'dependent' : 'independent', 'workgroups a dispatch': workgroups, dispatches: n,
            'GPU µs': gs.median * 1e3, 'GPU min–max': `${(gs.min * 1e3).toFixed(1)}–${(gs.max * 1e3).toFixed(1)}`,
            'wall µs': ws.median * 1e3, 'wall min–max': `${(ws.min * 1e3).toFixed(1)}–${(ws.max * 1e3).toFixed(1)}`,
          });
        } finally {
          rec.dispose();
        }
      }
      // the slope between the shortest and the longest chain: what one more dispatch costs
      const span = lengths[lengths.length - 1]! - lengths[0]!;
      const gpuPer = ((gpuMs[gpuMs.length - 1]! - gpuMs[0]!) / span) * 1e3, wallPer = ((wallMs[wallMs.length - 1]! - wallMs[0]!) / span) * 1e3;
      for (const row of perLength) rows.push({ ...row, 'GPU µs a dispatch': gpuPer, 'wall µs a dispatch': wallPer });
      console.log(JSON.stringify(perLength[perLength.length - 1]), `GPU ${gpuPer.toFixed(2)} µs, wall ${wallPer.toFixed(2)} µs a dispatch`);
    }
  }
  gpu.destroy(...buffers);
  const meta = runMeta(gpu);
  printTable(`cost of a dispatch on ${meta.card}, commit ${meta.commit}: chains of tiny dispatches in one recorded run, median of ${runs} runs; ` +
    `'a dispatch' = slope from ${lengths[0]} to ${lengths[lengths.length - 1]} dispatches (peer: bench/references/pytorch_dispatch.py, CUDA launches and graphs)`, rows);
  const file = writeJson('dispatch', { ...meta, slots, runs, rows });
  console.log(`\nwrote ${file}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
