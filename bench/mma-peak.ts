// The tensor-core ceiling WGSL reaches: how many f16 → f32 16×16×16 subgroup-matrix products a second the card
// runs when nothing but products run. Each subgroup loads one left and one right matrix from workgroup memory
// once, then multiplies them into ACC independent accumulators `u.iters` times (ACC chains, so the products of
// one chain wait on each other and ACC of them hide that latency); workgroups of WG invocations, enough of
// them to fill the card several times over. GPU timestamps of the one dispatch, BENCH_RUNS runs (≥ 5), median
// and min–max. This is the peak every subgroup-matrix kernel here (GEMM tiles, experts, attention) is held to,
// beside the card's published dense f16 rate (what cuBLAS and PyTorch reach through wgmma, which WGSL cannot).
//   node bench/dist/mma-peak.js
// Env: BENCH_RUNS (7)  BENCH_RUN_MS (20)  BENCH_CARD, BENCH_DRIVER, BENCH_COMMIT (recorded)  plus the GPU settings.
import { pathToFileURL } from 'node:url';
import { bindings, Gpu, gpuOptions, SUBGROUP_MATRIX_WGSL, subgroupMatrixUnsupportedReason, type KernelProgram } from '@latentwire/gpu';
import { benchEnv } from './lib/env.js';
import { printTable, runMeta, writeJson, type Row } from './lib/report.js';
import { timeRuns } from './lib/time-runs.js';

const B = bindings([['sink', 'array<f32>', 'read_write']], { iters: 'u32' });
/** Flops of one 16 × 16 × 16 product. */
const MMA_FLOPS = 2 * 16 * 16 * 16;
const ITERS = 4096;

export function peakProgram(sink: GPUBuffer, acc: number, wg: number, workgroups: number): KernelProgram {
  const subgroups = wg / 32;
  const chains = [...Array(acc).keys()];
  return {
    shader: B.shader(`mma_peak_acc${acc}_wg${wg}`, `${SUBGROUP_MATRIX_WGSL}
${B.wgsl}
var<workgroup> src: array<f16, 512>;
var<workgroup> out: array<f32, ${256 * subgroups}>;

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < 512u; i += ${wg}u) { src[i] = f16(f32((i * 7u + wgid.x) % 13u) * 0.0625 - 0.375); }
  workgroupBarrier();
  let sg = lid / 32u;
  let a = subgroupMatrixLoad<LeftT, row_major>(&src, 0u, 16u);
  let b = subgroupMatrixLoad<RightT, col_major>(&src, 256u, 16u);
  ${chains.map((j) => `var c${j} = ResT();`).join('\n  ')}
  for (var i = 0u; i < u.iters; i++) {
    ${chains.map((j) => `c${j} = subgroupMatrixMultiplyAccumulate(a, b, c${j});`).join('\n    ')}
  }
  // every chain's result is read, so none is dead code; the sink is written only for a value that never occurs
  var total = 0.0;
  ${chains.map((j) => `subgroupMatrixStore<row_major>(&out, sg * 256u, c${j}, 16u);\n  total += out[sg * 256u + lid % 32u];`).join('\n  ')}
  if (total == -1.0) { sink[0] = total; }
}`),
    buffers: B.buffers({ sink }),
    uniformValues: { iters: ITERS },
    workgroups: [workgroups],
  };
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const gpu = await Gpu.create({ ...gpuOptions(env), profile: true });
  const why = subgroupMatrixUnsupportedReason(gpu.matrixCapabilities);
  if (why !== null || !gpu.matmulOnMatrices) {
    console.log(`mma-peak: nothing to time on ${gpu.adapterInfo.description || gpu.adapterInfo.device}: ${why ?? 'MATMUL_ENGINE=f32'}`);
    return;
  }
  if (!gpu.profiler) throw new Error('mma-peak: the adapter has no timestamp queries');
  const sink = gpu.buffer('sink', 16);
  const runs = Math.max(5, env.BENCH_RUNS);
  const rows: Row[] = [];
  for (const wg of [128, 256]) {
    for (const acc of [1, 2, 4, 8]) {
      // 64 workgroups a slot of the occupancy probe's (about one a streaming multiprocessor) fill any card many times
      const workgroups = 64 * gpu.workgroupSlots.slots;
      const t = await timeRuns(gpu, [peakProgram(sink, acc, wg, workgroups)], runs, env.BENCH_RUN_MS);
      const flops = workgroups * (wg / 32) * acc * ITERS * MMA_FLOPS;
      const row: Row = {
        'invocations a workgroup': wg, 'accumulators a subgroup': acc, workgroups, 'ms median': t.med,
        'ms min–max': `${t.min.toPrecision(3)}–${t.max.toPrecision(3)}`, 'TFLOP/s': flops / (t.med * 1e9),
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
  }
  gpu.destroy(sink);
  const meta = runMeta(gpu);
  const best = Math.max(...rows.map((r) => r['TFLOP/s'] as number));
  printTable(`subgroup-matrix products alone (f16 → f32, 16 × 16 × 16) on ${meta.card}, commit ${meta.commit}: GPU timestamps, median of ${runs} runs; best ${best.toFixed(0)} TFLOP/s`, rows);
  const file = writeJson('mma-peak', { ...meta, bestTflops: best, rows });
  console.log(`\nwrote ${file}`);
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
