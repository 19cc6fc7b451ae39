// An experiment on the routed experts' decode bound (README, routed experts): the gate/up half on weights stored
// pre-tiled — f16, each 16 × 16 tile of W[n, k] contiguous (512 bytes), the tiles of 16 columns in K order — so
// a subgroup loads its right-hand matrices straight from memory in whole 512-byte pieces: no workgroup staging
// of weights, no barriers for them, each subgroup its own stream with U tiles of gate and of up in flight.
// (The direct forms removed in 9569107 loaded the checkpoint's row-major layout: 16 pieces of 32 bytes 4 KB
// apart a tile.) Only x is staged, as f16, KC columns at a time.
//
// Per case (experts touched, rows an expert: V2-Lite's batches 1, 16 and 64), one workgroup per (expert, 64
// columns) computes act[e, r, n] = silu(x_e[r] · W_gate[e, n]) · (x_e[r] · W_up[e, n]) for the expert's rows,
// timed with GPU timestamps (median of BENCH_RUNS), checked on sampled outputs against float64 from the weights
// read back. The ceiling: the weight bytes at the card's read rate measured in the same run; the staged kernel
// in production is bench/moe's gate/up column.
//   node bench/dist/moe-tiled-direct.js
// Env: BENCH_RUNS (7)  BENCH_DIRECT_U (tiles in flight a matrix a subgroup, p: ping-pong; 4,4p,8,8p)  plus the GPU settings.
import { bindings, Gpu, gpuOptions, SUBGROUP_MATRIX_WGSL, type KernelProgram } from '@latentwire/gpu';
import { fillRandom } from '@latentwire/gpu/kernels';
import { halfToFloat } from '@latentwire/model';
import { benchEnv } from './lib/env.js';
import { isSoftwareAdapter, printTable, runMeta, writeJson, type Row } from './lib/report.js';
import { measureReadBandwidth } from './lib/read-bandwidth.js';
import { timeRuns } from './lib/time-runs.js';

const H = 2048; // K: V2-Lite hidden
const I = 1408; // N: moe_intermediate_size
const E = 64;
const WG = 128;
const BN = 64; // columns a workgroup: 16 a subgroup
const KC = 1024; // x columns staged at a time
const XS = KC + 8;

const B = bindings([
  ['x', 'array<vec4<f32>>'], ['wg', 'array<f16>'], ['wu', 'array<f16>'], ['act', 'array<f32>', 'read_write'],
], { rows: 'u32', first_expert: 'u32' });

/**
 * The K walk over one staged x chunk: plain — U tiles of gate and of up loaded, then multiplied (a warp waits a
 * whole memory latency every U tiles); ping-pong — two register sets, the next U tiles' loads issued before the
 * current ones are multiplied, so loads are always in flight.
 */
function kWalk(U: number, pingPong: boolean): string {
  const us = [...Array(U).keys()];
  const load = (set: string, kk: string) => us.map((j) => `bg${set}${j} = subgroupMatrixLoad<RightT, col_major>(&wg, tb + ((kc + ${kk}) / 16u) * 256u + ${256 * j}u, 16u);
      bu${set}${j} = subgroupMatrixLoad<RightT, col_major>(&wu, tb + ((kc + ${kk}) / 16u) * 256u + ${256 * j}u, 16u);`).join('\n      ');
  const mul = (set: string, kk: string) => us.map((j) => `{
        let a = subgroupMatrixLoad<LeftT, row_major>(&xs, ${kk} + ${16 * j}u, XS);
        g = subgroupMatrixMultiplyAccumulate(a, bg${set}${j}, g);
        v = subgroupMatrixMultiplyAccumulate(a, bu${set}${j}, v);
      }`).join('\n      ');
  if (!pingPong) return `for (var kk = 0u; kk < KC; kk += ${16 * U}u) {
      ${load('A', 'kk')}
      ${mul('A', 'kk')}
    }`;
  return `${load('A', '0u')}
    for (var kk = 0u; kk < KC; kk += ${32 * U}u) {
      ${load('B', `kk + ${16 * U}u`)}
      ${mul('A', 'kk')}
      if (kk + ${32 * U}u < KC) {
      ${load('A', `kk + ${32 * U}u`)}
      }
      ${mul('B', `kk + ${16 * U}u`)}
    }`;
}

function shader(U: number, pingPong: boolean) {
  const sets = pingPong ? ['A', 'B'] : ['A'];
  const declare = sets.flatMap((t) => [...Array(U).keys()].map((j) => `var bg${t}${j}: RightT;\n  var bu${t}${j}: RightT;`)).join('\n  ');
  return B.shader(`moe_gate_up_tiled_direct_u${U}${pingPong ? '_pp' : ''}`, `${SUBGROUP_MATRIX_WGSL}
const K = ${H}u;
const N = ${I}u;
const KC = ${KC}u;
const XS = ${XS}u;
const WGS = ${WG}u;
${B.wgsl}
var<workgroup> xs: array<f16, 16 * XS>;
var<workgroup> out_g: array<f32, 4 * 256>;
var<workgroup> out_u: array<f32, 4 * 256>;
//!include silu
@compute @workgroup_size(WGS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let e = u.first_expert + wid.x;
  let sg = lid / 32u;
  let lane = lid % 32u;
  let n16 = wid.y * 4u + sg;              // this subgroup's 16-column block
  let live = n16 * 16u < N;
  // tile (n16, kb) of expert e at ((e · N/16 + n16) · K/16 + kb) · 256
  let tb = ((e * (N / 16u) + min(n16, N / 16u - 1u)) * (K / 16u)) * 256u;
  let xb = e * 16u * K;                   // expert e's 16 rows of x (rows past u.rows are zeros)
  var g = ResT();
  var v = ResT();
  ${declare}
  for (var kc = 0u; kc < K; kc += KC) {
    workgroupBarrier();
    for (var i = lid; i < 16u * KC / 4u; i += WGS) {
      let r = i / (KC / 4u);
      let c = (i % (KC / 4u)) * 4u;
      var q = vec4<f32>(0.0);
      if (r < u.rows) { q = x[(xb + r * K + kc + c) / 4u]; }
      let o = r * XS + c;
      xs[o] = f16(q.x); xs[o + 1u] = f16(q.y); xs[o + 2u] = f16(q.z); xs[o + 3u] = f16(q.w);
    }
    workgroupBarrier();
    ${kWalk(U, pingPong)}
  }
  subgroupMatrixStore<row_major>(&out_g, sg * 256u, g, 16u);
  subgroupMatrixStore<row_major>(&out_u, sg * 256u, v, 16u);
  workgroupBarrier();
  for (var q = 0u; q < 8u; q++) {
    let idx = lane + 32u * q;
    let r = idx / 16u;
    let n = n16 * 16u + idx % 16u;
    if (live && r < u.rows) { act[(wid.x * 16u + r) * N + n] = silu(out_g[sg * 256u + idx]) * out_u[sg * 256u + idx]; }
  }
}`);
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const gpu = await Gpu.create({ ...gpuOptions(env), profile: true });
  if (!gpu.profiler || !gpu.matmulLimits.subgroupMatrix) throw new Error('moe-tiled-direct: needs timestamps and subgroup matrices');
  if (isSoftwareAdapter(gpu.adapterInfo)) throw new Error('moe-tiled-direct: a GPU experiment');
  const hbm = await measureReadBandwidth(gpu, 5);
  const runs = Math.max(5, env.BENCH_RUNS);
  const bytes = E * I * H * 2;
  const wg = gpu.buffer('w_gate_tiled', bytes), wu = gpu.buffer('w_up_tiled', bytes);
  await gpu.run([
    fillRandom({ buffer: wg, dtype: 'f16', shape: [E * I, H] }, 1, Math.sqrt(3 / H), 0),
    fillRandom({ buffer: wu, dtype: 'f16', shape: [E * I, H] }, 2, Math.sqrt(3 / H), 0),
  ]);
  const xData = new Float32Array(E * 16 * H).map((_, i) => Math.sin(i * 0.37) * 0.5);
  const x = gpu.upload('x', xData);
  const act = gpu.buffer('act', E * 16 * I * 4);
  // the first expert's weights, for the check
  const g0 = new Uint16Array(await gpu.read(wg, 0, I * H * 2)), u0 = new Uint16Array(await gpu.read(wu, 0, I * H * 2));
  const at = (w: Uint16Array, n: number, k: number) => halfToFloat(w[((Math.floor(n / 16) * (H / 16) + Math.floor(k / 16)) * 256) + (n % 16) * 16 + (k % 16)]!);
  const Us = env.BENCH_DIRECT_U;
  const cases = [{ name: 'batch 1', experts: 6, rows: 1 }, { name: 'batch 16', experts: 51, rows: 2 }, { name: 'batch 64', experts: 64, rows: 6 }];
  const out: Row[] = [];
  for (const c of cases) {
    for (const { U, pingPong: pp } of Us) {
      const p: KernelProgram = {
        shader: shader(U, pp), buffers: B.buffers({ x, wg, wu, act }), uniformValues: { rows: c.rows, first_expert: 0 },
        workgroups: [c.experts, Math.ceil(I / BN)],
      };
      const t = await timeRuns(gpu, [p], runs, 30);
      const got = await gpu.readF32(act, 0, 16 * I);
      let worst = 0;
      for (let r = 0; r < c.rows; r++) {
        for (const n of [0, 17, 700, I - 1]) {
          let sg = 0, su = 0;
          for (let k = 0; k < H; k++) {
            const xv = xData[r * H + k]!;
            sg += xv * at(g0, n, k);
            su += xv * at(u0, n, k);
          }
          const want = (sg / (1 + Math.exp(-sg))) * su;
          worst = Math.max(worst, Math.abs(got[r * I + n]! - want) / (Math.abs(want) + 1e-3));
        }
      }
      const mb = (c.experts * 2 * I * H * 2) / 1e6;
      const gbps = mb / t.med; // MB a ms = GB/s
      const row: Row = {
        case: c.name, experts: c.experts, rows: c.rows, U, 'ping-pong': pp ? 'yes' : 'no', 'MB of weights': mb, 'ms median': t.med, 'ms min–max': `${t.min.toPrecision(3)}–${t.max.toPrecision(3)}`,
        'GB/s': gbps, '% of read rate': (100 * gbps) / hbm.gbps, 'ceiling ms': mb / hbm.gbps, 'max rel err (sampled)': worst,
      };
      out.push(row);
      console.log(JSON.stringify(row));
    }
  }
  const meta = runMeta(gpu);
  printTable(`gate/up on pre-tiled f16 weights loaded straight into subgroup matrices, on ${meta.card}, commit ${meta.commit}: GPU timestamps, median of ${runs} runs; read rate ${hbm.gbps.toFixed(0)} GB/s measured in this run`, out);
  console.log(`\nwrote ${writeJson('moe-tiled-direct', { ...meta, readGBps: hbm.gbps, rows: out })}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
