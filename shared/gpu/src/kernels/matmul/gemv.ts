// GEMV-style matmul for small M (decode): memory-bound on the weight, which is read exactly once. A workgroup
// owns ROWS = RG·R2 output columns (weight rows) for every row of x: its T·RG threads are RG groups of T
// threads, each group walking R2 weight rows along K in coalesced 16-byte words (8 bf16/f16 or 4 f32 values),
// each thread keeping MB·R2 vec4 accumulators in registers. The K partial sums are then reduced through
// workgroup memory. Rows of x beyond M and weight rows beyond N are clamped on read and never stored, so the
// hot loop has no bounds checks.
import type { KernelShader } from '../../runtime/program.js';
import { weightLoadWgsl } from '../weight-dtype.js';
import { type WeightDtype } from '@latentwire/model';
import { MATMUL_UNIFORMS, bindingsWgsl, unroll, weightUnpackWgsl, xLoadWgsl, type MatmulAlign } from './common.js';
import { memoShader } from '../../runtime/memo-shader.js';

export interface GemvConfig {
  /** Rows of x the shader is built for (M ≤ MB; 1, 2, 4, 8 or 16). */
  readonly MB: number;
  /** Weight rows per thread. */
  readonly R2: number;
  /** Threads along K per row group (a power of two). */
  readonly T: number;
  /** Row groups per workgroup. */
  readonly RG: number;
  /** Vec loop iterations issued back to back (more loads in flight per thread). */
  readonly U: number;
}

export function gemvRowsPerWorkgroup(c: GemvConfig): number {
  return c.RG * c.R2;
}

export function gemvWorkgroupBytes(c: GemvConfig): number {
  return c.RG * c.R2 * c.MB * c.T * 4;
}

/** Picks the GEMV shape for M rows of x and N outputs. */
export function gemvConfig(M: number, N: number, maxInvocations: number, maxWorkgroupBytes: number): GemvConfig {
  const MB = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : M <= 8 ? 8 : 16;
  const R2 = MB <= 2 || MB > 8 ? 1 : 2;
  // 32 threads along K (512 contiguous bytes of a bf16 row per step); narrow N takes fewer rows per workgroup
  // so there are still enough workgroups to fill the GPU
  let T = 32;
  const RG = N >= 2048 ? 8 : 4;
  while (T * RG > maxInvocations && T > 8) T /= 2;
  let c: GemvConfig = { MB, R2, T, RG, U: Math.max(1, 4 / R2) };
  while (gemvWorkgroupBytes(c) > maxWorkgroupBytes && c.T > 8) c = { ...c, T: c.T / 2 };
  return c;
}

function build_gemvShader(dtype: WeightDtype, align: MatmulAlign, c: GemvConfig, accumulate: boolean): KernelShader {
  const { MB, R2, T, RG, U } = c;
  const ROWS = RG * R2;
  const OUTS = ROWS * MB;
  const WG = T * RG;
  const rs = [...Array(R2).keys()];
  const ms = [...Array(MB).keys()];
  const each = (f: (m: number, r: number) => string) => ms.flatMap((m) => rs.map((r) => f(m, r))).join('\n');
  const vpw = dtype === 'f32' ? 4 : 8; // weight elements per vec4<u32>

  // one step of the vectorized loop at K position `k` (a multiple of vpw), suffix s keeps names unique
  const vecStep = (s: string, k: string) => {
    const loads = rs.map((r) =>
      dtype === 'f32'
        ? `let w${s}_${r} = w_f32(w[(wrow${r} + ${k}) >> 2u]);`
        : `let wv${s}_${r} = w[(wrow${r} + ${k}) >> 3u];\n      let wl${s}_${r} = w_lo(wv${s}_${r});\n      let wh${s}_${r} = w_hi(wv${s}_${r});`,
    );
    const xs = ms.map((m) =>
      dtype === 'f32'
        ? `let xa${s}_${m} = x4(xrow${m} + ${k});`
        : `let xa${s}_${m} = x4(xrow${m} + ${k});\n      let xb${s}_${m} = x4(xrow${m} + ${k} + 4u);`,
    );
    const fmas = each((m, r) =>
      dtype === 'f32'
        ? `      acc${m}_${r} = fma(xa${s}_${m}, w${s}_${r}, acc${m}_${r});`
        : `      acc${m}_${r} = fma(xa${s}_${m}, wl${s}_${r}, acc${m}_${r});\n      acc${m}_${r} = fma(xb${s}_${m}, wh${s}_${r}, acc${m}_${r});`,
    );
    return `      ${loads.join('\n      ')}\n      ${xs.join('\n      ')}\n${fmas}`;
  };

  const loop = align.vecW
    ? `  let kv_count = u.K / ${vpw}u;
  var kv = t;
  ${U > 1 ? `for (; kv + ${(U - 1) * T}u < kv_count; kv += ${U * T}u) {
${unroll(U, (i) => `    {\n      let k${i} = (kv + ${i * T}u) * ${vpw}u;\n${vecStep(String(i), `k${i}`)}\n    }`)}
  }` : ''}
  for (; kv < kv_count; kv += ${T}u) {
    let k = kv * ${vpw}u;
${vecStep('', 'k')}
  }`
    : `  for (var k = t; k < u.K; k += ${T}u) {
${rs.map((r) => `    let wt${r} = weight_at(wrow${r} + k);`).join('\n')}
${ms.map((m) => `    let xt${m} = x1(xrow${m} + k);`).join('\n')}
${each((m, r) => `    acc${m}_${r}.x = fma(xt${m}, wt${r}, acc${m}_${r}.x);`)}
  }`;

  const x1 = align.vecX ? `fn x1(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }` : `fn x1(i: u32) -> f32 { return x[i]; }`;
  const label = `matmul_gemv_${dtype}_m${MB}_r${R2}_t${T}_g${RG}_u${U}${align.vecX ? '_vx' : ''}${align.vecW ? '_vw' : ''}${accumulate ? '_acc' : ''}`;
  const source = /* wgsl */ `
${bindingsWgsl(align)}
${xLoadWgsl(align)}
${x1}
${align.vecW ? weightUnpackWgsl(dtype) : weightLoadWgsl(dtype, 'w')}
const T = ${T}u;
const MB = ${MB}u;
const ROWS = ${ROWS}u;
const OUTS = ${OUTS}u;
var<workgroup> red: array<f32, ${OUTS * T}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let block = wg.x + wg.y * nwg.x;
  let t = lid % T;
  let g = lid / T;
  let n0 = block * ROWS + g * ${R2}u;
${rs.map((r) => `  let wrow${r} = min(n0 + ${r}u, u.N - 1u) * u.K + u.w_offset;`).join('\n')}
${ms.map((m) => `  let xrow${m} = min(${m}u, u.M - 1u) * u.x_stride + u.x_offset;`).join('\n')}
${each((m, r) => `  var acc${m}_${r} = vec4<f32>(0.0);`)}
${loop}
  // partial sums -> workgroup memory, laid out [output][t]; output o = (row in workgroup) * MB + m
${each((m, r) => `  red[((g * ${R2}u + ${r}u) * MB + ${m}u) * T + t] = (acc${m}_${r}.x + acc${m}_${r}.y) + (acc${m}_${r}.z + acc${m}_${r}.w);`)}
  workgroupBarrier();
  for (var s = T / 2u; s > 0u; s >>= 1u) {
    for (var i = lid; i < OUTS * s; i += ${WG}u) {
      let o = i / s;
      let j = i % s;
      red[o * T + j] += red[o * T + j + s];
    }
    workgroupBarrier();
  }
  for (var o = lid; o < OUTS; o += ${WG}u) {
    let n = block * ROWS + o / MB;
    let m = o % MB;
    if (n < u.N && m < u.M) {
      let yi = m * u.y_stride + u.y_offset + n;
      y[yi] = ${accumulate ? 'y[yi] + ' : ''}red[o * T];
    }
  }
}
`;
  return { label, source, uniforms: MATMUL_UNIFORMS };
}

export const gemvShader = memoShader(build_gemvShader);
