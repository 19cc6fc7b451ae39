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

/** f16 row stride of the probe's slabs: the GEMM's (BK 32 + 8 padding, gemm-mma.ts). */
const LOAD_STR = 40;
/** Rows of each slab: 4 subgroups' 64 rows (TM, TN ≤ 4). */
const LOAD_ROWS = 128;

/**
 * The same products with their operands loaded from workgroup memory each trip, as a GEMM's inner loop does:
 * every subgroup loads TM left matrices (row-major, its own rows of a 128-row slab) and TN right ones
 * (column-major, its own columns of another) at a padded stride of 40, then multiplies the TM × TN pairs into
 * TM·TN accumulators. The K offset moves every trip (0, 16) so no load can be hoisted out of the loop. With
 * `barrier`, a workgroup barrier every two trips (a 32-deep slab's worth), as the staged GEMM waits.
 */
export function loadsProgram(sink: GPUBuffer, TM: number, TN: number, barrier: boolean, workgroups: number): KernelProgram {
  const ti = [...Array(TM).keys()], tj = [...Array(TN).keys()];
  const slab = LOAD_ROWS * LOAD_STR;
  return {
    shader: B.shader(`mma_loads_tm${TM}_tn${TN}${barrier ? '_bar' : ''}`, `${SUBGROUP_MATRIX_WGSL}
${B.wgsl}
var<workgroup> src: array<f16, ${2 * slab}>;
var<workgroup> out: array<f32, ${256 * 4}>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < ${2 * slab}u; i += 128u) { src[i] = f16(f32((i * 7u + wgid.x) % 13u) * 0.0625 - 0.375); }
  workgroupBarrier();
  let sg = lid / 32u;
  let sm = (sg / 2u) * 64u;
  let sn = (sg % 2u) * 64u;
  ${ti.flatMap((i) => tj.map((j) => `var c${i}_${j} = ResT();`)).join('\n  ')}
  for (var i = 0u; i < u.iters; i++) {
    let k = (i & 1u) * 16u;
    ${ti.map((i) => `let a${i} = subgroupMatrixLoad<LeftT, row_major>(&src, (sm + ${16 * i}u) * ${LOAD_STR}u + k, ${LOAD_STR}u);`).join('\n    ')}
    ${tj.map((j) => `let b${j} = subgroupMatrixLoad<RightT, col_major>(&src, ${slab}u + (sn + ${16 * j}u) * ${LOAD_STR}u + k, ${LOAD_STR}u);`).join('\n    ')}
    ${ti.flatMap((i) => tj.map((j) => `c${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i}_${j});`)).join('\n    ')}
    ${barrier ? 'if ((i & 1u) == 1u) { workgroupBarrier(); }' : ''}
  }
  var total = 0.0;
  ${ti.flatMap((i) => tj.map((j) => `subgroupMatrixStore<row_major>(&out, sg * 256u, c${i}_${j}, 16u);\n  total += out[sg * 256u + lid % 32u];`)).join('\n  ')}
  if (total == -1.0) { sink[0] = total; }
}`),
    buffers: B.buffers({ sink }),
    uniformValues: { iters: ITERS },
    workgroups: [workgroups],
  };
}

const BS = bindings([['x', 'array<vec4<f32>>'], ['w', 'array<u32>'], ['sink', 'array<f32>', 'read_write']], { iters: 'u32' });
/** The same with f16 x, 4 values a vec2<u32> (as the GEMM's xF16 form reads them). */
const BS16 = bindings([['x', 'array<vec2<u32>>'], ['w', 'array<u32>'], ['sink', 'array<f32>', 'read_write']], { iters: 'u32' });
/** The staging probe's operands: x rows of f32 and W rows of bf16 pairs, 2048 deep, a 128-row block per workgroup slot. */
const STAGE_K = 2048;
const STAGE_BLOCKS = 32;

/**
 * A 128 × 128 GEMM block's inner loop as gemm-mma.wgsl runs it (32-deep slabs of f32 x and bf16 W, each thread's
 * share loaded into registers, converted to f16 and stored to workgroup memory at stride 40, two barriers a trip),
 * over `u.iters` slabs of an L2-resident 32-block operand set, with (`products`) or without the 2 × 16 products a
 * subgroup a trip: how much of the GEMM's time the staging alone takes. With `xF16`, x is f16 in memory (half its
 * bytes, stored without a conversion), as the GEMM's f16-activation form stages it.
 */
export function stagingProgram(x: GPUBuffer, w: GPUBuffer, sink: GPUBuffer, products: boolean, workgroups: number, xF16 = false): KernelProgram {
  const xl = [...Array(8).keys()], wl = [...Array(16).keys()], t4 = [...Array(4).keys()];
  const slab = 128 * LOAD_STR;
  const B = xF16 ? BS16 : BS;
  const xStore = xF16
    ? 'let h01 = bitcast<vec2<f16>>(xv.x); let h23 = bitcast<vec2<f16>>(xv.y);\n      xs[o] = h01.x; xs[o + 1u] = h01.y; xs[o + 2u] = h23.x; xs[o + 3u] = h23.y;'
    : 'xs[o] = f16(xv.x); xs[o + 1u] = f16(xv.y); xs[o + 2u] = f16(xv.z); xs[o + 3u] = f16(xv.w);';
  return {
    shader: B.shader(`mma_staging${xF16 ? '_xf16' : ''}${products ? '_products' : ''}`, `${SUBGROUP_MATRIX_WGSL}
${B.wgsl}
var<workgroup> xs: array<f16, ${slab}>;
var<workgroup> ws: array<f16, ${slab}>;
var<workgroup> out: array<f32, ${256 * 4}>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let sg = lid / 32u;
  let sm = (sg / 2u) * 64u;
  let sn = (sg % 2u) * 64u;
  let block = (wgid.x % ${STAGE_BLOCKS}u) * 128u;
  ${t4.flatMap((i) => t4.map((j) => `var c${i}_${j} = ResT();`)).join('\n  ')}
  var keep = 0.0;
  for (var i = 0u; i < u.iters; i++) {
    let k0 = (i * 32u) % ${STAGE_K}u;
    workgroupBarrier();
    ${xl.map((j) => `{
      let v = lid + ${j * 128}u;
      let row = v / 8u;
      let kx = (v % 8u) * 4u;
      let xv = x[((block + row) * ${STAGE_K}u + k0 + kx) >> 2u];
      let o = row * ${LOAD_STR}u + kx;
      ${xStore}
    }`).join('\n    ')}
    ${wl.map((j) => `{
      let v = lid + ${j * 128}u;
      let row = v / 16u;
      let kw = (v % 16u) * 2u;
      let p = w[((block + row) * ${STAGE_K}u + k0 + kw) >> 1u];
      let h = vec2<f16>(bitcast<vec2<f32>>(vec2<u32>(p << 16u, p & 0xffff0000u)));
      let o = row * ${LOAD_STR}u + kw;
      ws[o] = h.x; ws[o + 1u] = h.y;
    }`).join('\n    ')}
    workgroupBarrier();
    ${products ? [0, 16].map((kk) => `{
      ${t4.map((i) => `let a${i} = subgroupMatrixLoad<LeftT, row_major>(&xs, (sm + ${16 * i}u) * ${LOAD_STR}u + ${kk}u, ${LOAD_STR}u);`).join('\n      ')}
      ${t4.map((j) => `let b${j} = subgroupMatrixLoad<RightT, col_major>(&ws, (sn + ${16 * j}u) * ${LOAD_STR}u + ${kk}u, ${LOAD_STR}u);`).join('\n      ')}
      ${t4.flatMap((i) => t4.map((j) => `c${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i}_${j});`)).join('\n      ')}
    }`).join('\n    ') : `keep += f32(xs[lid * 8u]) + f32(ws[lid * 8u + 1u]);`}
  }
  var total = keep;
  ${products ? t4.flatMap((i) => t4.map((j) => `subgroupMatrixStore<row_major>(&out, sg * 256u, c${i}_${j}, 16u);\n  total += out[sg * 256u + lid % 32u];`)).join('\n  ') : ''}
  if (total == -1.0) { sink[0] = total; }
}`),
    buffers: B.buffers({ x, w, sink }),
    uniformValues: { iters: 4 * (STAGE_K / 32) },
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
  const best = Math.max(...rows.map((r) => r['TFLOP/s'] as number));
  // what a GEMM's inner loop reaches when its operands come from workgroup memory: the staged kernels' ceiling
  const loadRows: Row[] = [];
  for (const [TM, TN] of [[1, 1], [2, 2], [2, 4], [4, 4]] as const) {
    for (const barrier of [false, true]) {
      const workgroups = 16 * gpu.workgroupSlots.slots;
      const t = await timeRuns(gpu, [loadsProgram(sink, TM, TN, barrier, workgroups)], runs, env.BENCH_RUN_MS);
      const flops = workgroups * 4 * TM * TN * ITERS * MMA_FLOPS;
      const tflops = flops / (t.med * 1e9);
      const row: Row = {
        'result tiles a subgroup': `${TM} x ${TN}`, 'matrix loads a trip': TM + TN, 'barrier every 2 trips': barrier ? 'yes' : 'no', workgroups,
        'ms median': t.med, 'ms min–max': `${t.min.toPrecision(3)}–${t.max.toPrecision(3)}`, 'TFLOP/s': tflops, 'of products alone': tflops / best,
      };
      loadRows.push(row);
      console.log(JSON.stringify(row));
    }
  }
  // the GEMM's staging alone and with its products, on L2-resident operands (fill is irrelevant to the timing)
  const xBuf = gpu.buffer('stage-x', STAGE_BLOCKS * 128 * STAGE_K * 4), wBuf = gpu.buffer('stage-w', STAGE_BLOCKS * 128 * STAGE_K * 2);
  const stageRows: Row[] = [];
  for (const xF16 of [false, true]) {
    for (const products of [false, true]) {
      const workgroups = 8 * gpu.workgroupSlots.slots;
      const t = await timeRuns(gpu, [stagingProgram(xBuf, wBuf, sink, products, workgroups, xF16)], runs, env.BENCH_RUN_MS);
      const trips = workgroups * 4 * (STAGE_K / 32);
      const flops = trips * 128 * 128 * 32 * 2;
      const row: Row = {
        'x': xF16 ? 'f16' : 'f32', 'trip': products ? 'stage x and W, 32 products a subgroup' : 'stage x and W only', workgroups, 'ms median': t.med,
        'ms min–max': `${t.min.toPrecision(3)}–${t.max.toPrecision(3)}`, 'ns a trip a workgroup slot': (t.med * 1e6) / (trips / gpu.workgroupSlots.slots),
        'TFLOP/s (of the products)': flops / (t.med * 1e9), 'staged GB/s': (trips * 128 * 32 * (xF16 ? 4 : 6)) / (t.med * 1e6),
      };
      stageRows.push(row);
      console.log(JSON.stringify(row));
    }
  }
  gpu.destroy(sink, xBuf, wBuf);
  const meta = runMeta(gpu);
  printTable(`subgroup-matrix products alone (f16 → f32, 16 × 16 × 16) on ${meta.card}, commit ${meta.commit}: GPU timestamps, median of ${runs} runs; best ${best.toFixed(0)} TFLOP/s`, rows);
  printTable(`the same products with their operands loaded from workgroup memory every trip (128 invocations, padded stride ${LOAD_STR}): the staged GEMMs' ceiling`, loadRows);
  printTable('a 128 x 128 GEMM block\'s trips (32-deep slabs of f32 or f16 x and bf16 W staged as f16, two barriers a trip) without and with their products', stageRows);
  const file = writeJson('mma-peak', { ...meta, bestTflops: best, rows, loadRows, stageRows });
  console.log(`\nwrote ${file}`);
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
