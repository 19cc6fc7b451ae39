// GEMV-style matmul for small M (decode): memory-bound on the weight, which is read exactly once. A workgroup
// owns ROWS = RG·R2 output columns (weight rows) for every row of x: its T·RG threads are RG groups of T
// threads, each group walking R2 weight rows along K in coalesced 16-byte words (8 bf16/f16 or 4 f32 values),
// each thread keeping MB·R2 vec4 accumulators in registers. The K partial sums are then reduced through
// workgroup memory. Rows of x beyond M and weight rows beyond N are clamped on read and never stored, so the
// hot loop has no bounds checks.
import type { KernelShader } from '../../runtime/program.js';
import { weightLoadWgsl } from '../weight-dtype.js';
import { type WeightDtype } from '@latentwire/model';
import { MATMUL_UNIFORMS, matmulBindings, matmulStorage, unroll, weightUnpackWgsl, xLoadWgsl, type MatmulAlign } from './common.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { lanesSumWgsl } from '../../runtime/wgsl-pieces/reductions.js';
import { bindings, type StorageDecl } from '../../runtime/bindings.js';

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
  // so there are still enough workgroups to fill the GPU. 16 row groups (512 threads) from N 2048: on the H100
  // (12-06, decode steps at 1K, same call) 8 → 16 made batch 1 227.7 → 235.3 tokens/s, 2 320 → 344, 4 418 → 444,
  // 8 556 → 562; 32 was slower than 16 at every batch, and so were 64 × 4, 32 × 4 and 64 × 8 (threads × groups)
  let T = 32;
  const RG = N >= 2048 ? 16 : 4;
  while (T * RG > maxInvocations && T > 8) T /= 2;
  // U, the K steps a thread issues together: 2 (was 4 / R2, 4 for one weight row a thread); on the H100 (12-06, with 16
  // row groups, same call) 4 → 2 made batch 1 233.9 → 236.5 tokens/s, batch 2 343 → 347, batch 4 the same, and 8
  // was slower (231): more steps in flight cost registers, so fewer resident workgroups (the weight words of 8
  // steps loaded before the norm prologue, tried earlier: batch 1 4.69 → 4.91 ms a step)
  let c: GemvConfig = { MB, R2, T, RG, U: 2 };
  while (gemvWorkgroupBytes(c) > maxWorkgroupBytes && c.T > 8) c = { ...c, T: c.T / 2 };
  return c;
}

/** Where the second output writes: `y` again ('same') or its own buffer ('other'). */
export type GemvOutputTarget = 'same' | 'other';

/**
 * The decode step's fusions around a GEMV (gemv-fused.ts launches them), compile-time:
 *  - norm: x rows RMSNorm'd in the prologue by a weight of this dtype, as the rms-norm kernel computes them (its
 *    128 lanes' partial sums, tree-summed in the same order, then x·inv·w), so the products are the unfused ones;
 *  - normOut: with norm, the first workgroup also writes the normed rows to `xn` (dense [M, K]), with the products'
 *    expression x·inv·w, so they are the rms-norm kernel's bit for bit (the MoE layer's experts read them);
 *  - second: a second weight and output in the same dispatch (the workgroups past the first output's blocks take
 *    the second), into `y` again at its own stride and offset ('same') or into another buffer ('other');
 *  - silu: x holds [gate ‖ up] rows and the product reads silu(gate)·up (the silu-mul kernel's arithmetic);
 *  - combine: the MoE combine of `combine` (top-k) routed slots added after the accumulated product, as the
 *    combine kernel sums them: y = (y + x·Wᵀ) + Σ_j w[m, j]·slot_out[m·k + j] (the shared experts' down
 *    projection finishing the MoE layer).
 */
export interface GemvFuse {
  readonly norm?: WeightDtype;
  readonly normOut?: boolean;
  readonly second?: GemvOutputTarget;
  readonly silu?: boolean;
  readonly combine?: number;
}

/** Lanes of the rms-norm kernel's reduction, which the norm prologue reproduces (the rms-rows piece's RMS_LANES). */
export const GEMV_NORM_LANES = 128;

/** Workgroup bytes the fusions add to the GEMV's own. */
export function gemvFuseBytes(c: GemvConfig, fuse: GemvFuse): number {
  return fuse.norm ? c.MB * (GEMV_NORM_LANES + 1) * 4 : 0;
}

export const GEMV_FUSED_UNIFORMS = {
  ...MATMUL_UNIFORMS, eps: 'f32', N2: 'u32', y2_stride: 'u32', y2_offset: 'u32', w2_offset: 'u32', blocks1: 'u32',
} as const;

export interface GemvVariant {
  readonly dtype: WeightDtype; readonly align: MatmulAlign; readonly config: GemvConfig; readonly accumulate: boolean; readonly fuse?: GemvFuse;
  /**
   * With the norm or silu fusion: the x rows' transformed values (x·inv·w, or silu(gate)·up) computed once per
   * workgroup into workgroup memory of this many vec4 (MB rows of ceil(K / 4)), which the loop then reads. Computed
   * in the loop instead, every 16-byte weight load came with the x loads, the norm weight's (8 scalar loads) or
   * the gate and up halves' and 8 exponentials: ~4× the loads of the plain GEMV a weight byte (the norm-fused
   * GEMVs ran at ~0.5 TB/s on the H200 at batch 1, where the plain one streams 16 MiB at 1.3).
   */
  readonly stageX?: number;
  /**
   * Each output's T lane partials summed by subgroup shuffles (lanesSumWgsl: the tree's additions in its order, so
   * the outputs are bit for bit the workgroup-memory tree's) and stored by the first lane, for a device whose
   * subgroups hold whole runs of T consecutive invocations (MatmulLimits.subgroupSize a multiple of T).
   */
  readonly subgroupReduce?: boolean;
}

/** Whether a GEMV of T lanes a row group sums them by subgroup shuffles on a device of these limits. */
export function gemvSubgroupReduce(T: number, subgroupSize: number | undefined): boolean {
  return subgroupSize !== undefined && subgroupSize % T === 0;
}

/** Workgroup vec4s that staging the transformed x takes for M ≤ MB rows of depth K (GemvVariant.stageX). */
export function gemvStageVec4s(c: GemvConfig, K: number): number {
  return c.MB * Math.ceil(K / 4);
}

function build_gemvShader({ dtype, align, config: c, accumulate, fuse, stageX, subgroupReduce = false }: GemvVariant): KernelShader {
  const { MB, R2, T, RG, U } = c;
  const norm = fuse?.norm, normOut = fuse?.normOut ?? false, silu = fuse?.silu ?? false, combine = fuse?.combine;
  const second = fuse?.second;
  if (norm && silu) throw new RangeError('gemv: norm and silu fusions exclude each other');
  if (stageX !== undefined && (!(norm || silu) || !Number.isInteger(stageX) || stageX < MB)) {
    throw new RangeError(`gemv: stageX ${stageX} needs the norm or silu fusion and room for ${MB} rows`);
  }
  if (normOut && !norm) throw new RangeError('gemv: normOut needs the norm fusion');
  if (combine !== undefined && (second || !accumulate)) throw new RangeError('gemv: the combine fusion takes one accumulated output');
  // output j's weight binding and buffer
  const wName = (j: number) => (j === 0 ? 'w' : 'w2');
  const yName = (j: number) => (j > 0 && second === 'other' ? 'y2' : 'y');
  // a statement per output, chosen by the workgroup's `second`
  const branch = (ind: string, body: (j: number) => string) => `${ind}if (second) {\n${body(1)}\n${ind}} else {\n${body(0)}\n${ind}}`;
  const ROWS = RG * R2;
  const OUTS = ROWS * MB;
  const WG = T * RG;
  const rs = [...Array(R2).keys()];
  const ms = [...Array(MB).keys()];
  const each = (f: (m: number, r: number) => string) => ms.flatMap((m) => rs.map((r) => f(m, r))).join('\n');
  const vpw = dtype === 'f32' ? 4 : 8; // weight elements per vec4<u32>

  // the x values the products read, row m's activations at column k (xrow: the row's first element), as WGSL
  // expressions written into the loop (the unfused GEMV's text is unchanged: lavapipe's compile of it is
  // sensitive to the shape of the source)
  const transform4 = (inv: string, row: string, k: string) => norm
    ? `x4(${row} + ${k}) * ${inv} * g4(${k})`
    : silu ? `silu_mul4(x4(${row} + ${k}), x4(${row} + ${k} + u.K))` : `x4(${row} + ${k})`;
  const transform1 = (inv: string, row: string, k: string) => norm
    ? `x1(${row} + ${k}) * ${inv} * g_at(${k})`
    : silu ? `silu_mul(x1(${row} + ${k}), x1(${row} + ${k} + u.K))` : `x1(${row} + ${k})`;
  // staged, the loop reads row m's values from workgroup memory (rows kq vec4 apart)
  const xv4 = (m: number, row: string, k: string) => stageX !== undefined ? `xs[${m}u * kq + ((${k}) >> 2u)]` : transform4(`inv${m}`, row, k);
  const xv1 = (m: number, row: string, k: string) =>
    stageX !== undefined ? `xs[${m}u * kq + ((${k}) >> 2u)][(${k}) & 3u]` : transform1(`inv${m}`, row, k);
  // one step of the vectorized loop at K position `k` (a multiple of vpw), suffix s keeps names unique
  const vecStep = (s: string, k: string, W: string) => {
    const loads = rs.map((r) =>
      dtype === 'f32'
        ? `let w${s}_${r} = w_f32(${W}[(wrow${r} + ${k}) >> 2u]);`
        : `let wv${s}_${r} = ${W}[(wrow${r} + ${k}) >> 3u];\n      let wl${s}_${r} = w_lo(wv${s}_${r});\n      let wh${s}_${r} = w_hi(wv${s}_${r});`,
    );
    const xs = ms.map((m) =>
      dtype === 'f32'
        ? `let xa${s}_${m} = ${xv4(m, `xrow${m}`, k)};`
        : `let xa${s}_${m} = ${xv4(m, `xrow${m}`, k)};\n      let xb${s}_${m} = ${xv4(m, `xrow${m}`, `${k} + 4u`)};`,
    );
    const fmas = each((m, r) =>
      dtype === 'f32'
        ? `      acc${m}_${r} = fma(xa${s}_${m}, w${s}_${r}, acc${m}_${r});`
        : `      acc${m}_${r} = fma(xa${s}_${m}, wl${s}_${r}, acc${m}_${r});\n      acc${m}_${r} = fma(xb${s}_${m}, wh${s}_${r}, acc${m}_${r});`,
    );
    return `      ${loads.join('\n      ')}\n      ${xs.join('\n      ')}\n${fmas}`;
  };

  const loopOver = (W: string) => align.vecW
    ? `  let kv_count = u.K / ${vpw}u;
  var kv = t;
  ${U > 1 ? `for (; kv + ${(U - 1) * T}u < kv_count; kv += ${U * T}u) {
${unroll(U, (i) => `    {\n      let k${i} = (kv + ${i * T}u) * ${vpw}u;\n${vecStep(String(i), `k${i}`, W)}\n    }`)}
  }` : ''}
  for (; kv < kv_count; kv += ${T}u) {
    let k = kv * ${vpw}u;
${vecStep('', 'k', W)}
  }`
    : `  for (var k = t; k < u.K; k += ${T}u) {
${rs.map((r) => `    let wt${r} = ${W === 'w' ? 'weight_at' : 'weight2_at'}(wrow${r} + k);`).join('\n')}
${ms.map((m) => `    let xt${m} = ${xv1(m, `xrow${m}`, 'k')};`).join('\n')}
${each((m, r) => `    acc${m}_${r}.x = fma(xt${m}, wt${r}, acc${m}_${r}.x);`)}
  }`;

  const x1 = align.vecX ? `fn x1(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }` : `fn x1(i: u32) -> f32 { return x[i]; }`;
  const fused = fuse !== undefined && (norm !== undefined || second !== undefined || silu || combine !== undefined);
  const label = `matmul_gemv_${dtype}_m${MB}_r${R2}_t${T}_g${RG}_u${U}${align.vecX ? '_vx' : ''}${align.vecW ? '_vw' : ''}` +
    `${norm ? `_norm_${norm}` : ''}${normOut ? '_xn' : ''}${second ? `_dual_${second}` : ''}${silu ? '_silu' : ''}${accumulate ? '_acc' : ''}${combine ? `_combine_k${combine}` : ''}` +
    `${stageX !== undefined ? `_sx${stageX}` : ''}${subgroupReduce ? '_sg' : ''}`;
  const xValues = norm
    ? `fn g4(k: u32) -> vec4<f32> { return vec4<f32>(g_at(k), g_at(k + 1u), g_at(k + 2u), g_at(k + 3u)); }
const RMS_ROWS: u32 = ${MB}u;
const RMS_WG: u32 = ${WG}u;
fn rms_x(m: u32, c: u32) -> f32 { return x1(m * u.x_stride + u.x_offset + c); }
//!include rms-rows`
    : silu
      ? '//!include silu'
      : '';
  const extraStorage: StorageDecl[] = [
    ...(norm ? [['gw', 'array<u32>'] as const] : []),
    ...(second ? [['w2', `array<${align.vecW ? 'vec4<u32>' : 'u32'}>`] as const] : []),
    ...(second === 'other' ? [['y2', 'array<f32>', 'read_write'] as const] : []),
    ...(normOut ? [['xn', 'array<f32>', 'read_write'] as const] : []),
    ...(combine ? [['slot_out', 'array<f32>'] as const, ['slot_w', 'array<f32>'] as const] : []),
  ];
  const B = fused ? bindings([...matmulStorage(align), ...extraStorage], GEMV_FUSED_UNIFORMS) : matmulBindings(align);
  const bindingDecls = fused
    ? `${B.wgsl}
${norm ? weightLoadWgsl(norm, 'gw', 'g_at') : ''}
${second && !align.vecW ? weightLoadWgsl(dtype, 'w2', 'weight2_at') : ''}`
    : B.wgsl;
  const staged = stageX !== undefined;
  // staged with vec4 x: a thread's staging loads (x, and the norm weight or the up half) issued before the norm
  const hoist = staged && align.vecX;
  const SI = staged ? Math.ceil(stageX / WG) : 0;
  const stageLoads = !hoist ? '' : [...Array(SI).keys()].map((j) => `  let si${j} = lid + ${j * WG}u;
  let sj${j} = min(si${j}, MB * kq - 1u);
  let sc${j} = (sj${j} % kq) * 4u;
  let sxr${j} = min(sj${j} / kq, u.M - 1u) * u.x_stride + u.x_offset;
  let sx${j} = x4(sxr${j} + sc${j});
  let sy${j} = ${norm ? `g4(sc${j})` : `x4(sxr${j} + sc${j} + u.K)`};`).join('\n');
  // RMSNorm of x's rows in the rms-norm kernel's order (the rms-rows piece)
  const prologue = norm
    ? `  rms_rows(lid, u.M, u.K, u.eps);
${stageX === undefined ? ms.map((m) => `  let inv${m} = rms_inv[${m}u];`).join('\n') : ''}${normOut && !staged ? `
  // the normed rows for the kernels after this one, from one workgroup, in the products' expression
  if (wg.x + wg.y * nwg.x == 0u) {
    for (var i = lid; i < u.M * u.K; i += ${WG}u) {
      let c = i % u.K;
      let m = i / u.K;
      xn[i] = x1(m * u.x_stride + u.x_offset + c) * rms_inv[m] * g_at(c);
    }
  }` : ''}`
    : '';
  // the normed rows for the kernels after this one, copied by one workgroup from the staged rows (the products' x,
  // bit for bit: the same expression); written from x instead, that workgroup waited on a load a value
  const normOutStaged = normOut && staged ? `
  if (wg.x + wg.y * nwg.x == 0u) {
    for (var i = lid; i < u.M * u.K; i += ${WG}u) {
      let c = i % u.K;
      xn[i] = xs[(i / u.K) * kq + (c >> 2u)][c & 3u];
    }
  }` : '';
  // the transformed rows into workgroup memory, once (rows past M repeat row M - 1, as the unstaged loop reads them)
  const staging = !staged ? '' : hoist ? `${[...Array(SI).keys()].map((j) => `  if (si${j} < MB * kq) { xs[si${j}] = ${norm
    ? `sx${j} * rms_inv[si${j} / kq] * sy${j}`
    : `silu_mul4(sx${j}, sy${j})`}; }`).join('\n')}
  workgroupBarrier();${normOutStaged}` : `
  for (var i = lid; i < MB * kq; i += ${WG}u) {
    let m = i / kq;
    let c = (i % kq) * 4u;
    let xrow = min(m, u.M - 1u) * u.x_stride + u.x_offset;
    ${align.vecX
    ? `xs[i] = ${transform4(norm ? 'rms_inv[m]' : '', 'xrow', 'c')};`
    : `var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
      if (c + j < u.K) { v[j] = ${transform1(norm ? 'rms_inv[m]' : '', 'xrow', 'c + j')}; }
    }
    xs[i] = v;`}
  }
  workgroupBarrier();${normOutStaged}`;
  // output (n, m) = `sum` into y (or y2)
  const store = (arr: string, stride: string, offset: string, sum: string) => combine
    ? `let yi = m * ${stride} + ${offset} + n;
      var cs = 0.0;
      for (var j = 0u; j < ${combine}u; j++) { cs = fma(slot_w[m * ${combine}u + j], slot_out[(m * ${combine}u + j) * u.N + n], cs); }
      ${arr}[yi] = (${arr}[yi] + ${sum}) + cs;`
    : `let yi = m * ${stride} + ${offset} + n;
      ${arr}[yi] = ${accumulate ? `${arr}[yi] + ` : ''}${sum};`;
  const stores = (ind: string, sum: string) => second
    ? branch(ind, (j) => `${ind}  ${store(yName(j), j === 0 ? 'u.y_stride' : 'u.y2_stride', j === 0 ? 'u.y_offset' : 'u.y2_offset', sum)}`)
    : `${ind}${store('y', 'u.y_stride', 'u.y_offset', sum)}`;
  const partial = (m: number, r: number) => `(acc${m}_${r}.x + acc${m}_${r}.y) + (acc${m}_${r}.z + acc${m}_${r}.w)`;
  const nOut = second ? 'n_out' : 'u.N';
  // the lane partials → outputs: by subgroup shuffles, each row group's first lane storing its outputs; or laid
  // out [output][t] in workgroup memory (output o = (row in workgroup) · MB + m) and tree-summed there
  const reduce = subgroupReduce
    ? `${each((m, r) => `  let sum${m}_${r} = lanes_sum(${partial(m, r)});`)}
  if (t == 0u) {
${each((m, r) => `    {
      let n = n0 + ${r}u;
      let m = ${m}u;
      if (n < ${nOut} && m < u.M) {
${stores('        ', `sum${m}_${r}`)}
      }
    }`)}
  }`
    : `${each((m, r) => `  red[((g * ${R2}u + ${r}u) * MB + ${m}u) * T + t] = ${partial(m, r)};`)}
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
    if (n < ${nOut} && m < u.M) {
${stores('      ', 'red[o * T]')}
    }
  }`;
  const source = /* wgsl */ `${subgroupReduce ? 'enable subgroups;\n' : ''}
${bindingDecls}
${xLoadWgsl(align)}
${x1}
${align.vecW ? weightUnpackWgsl(dtype) : weightLoadWgsl(dtype, 'w')}
const T = ${T}u;
const MB = ${MB}u;
const ROWS = ${ROWS}u;
const OUTS = ${OUTS}u;
${subgroupReduce ? lanesSumWgsl('lanes_sum', T) : `var<workgroup> red: array<f32, ${OUTS * T}>;`}
${stageX !== undefined ? `var<workgroup> xs: array<vec4<f32>, ${stageX}>;\n` : ''}${xValues}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
${second
    ? `  let second = wg.x + wg.y * nwg.x >= u.blocks1;
  let block = wg.x + wg.y * nwg.x - select(0u, u.blocks1, second);
  let n_out = select(u.N, u.N2, second);
  let w_off = select(u.w_offset, u.w2_offset, second);`
    : `  let block = wg.x + wg.y * nwg.x;`}
  let t = lid % T;
  let g = lid / T;
  let n0 = block * ROWS + g * ${R2}u;
${rs.map((r) => `  let wrow${r} = min(n0 + ${r}u, ${second ? 'n_out' : 'u.N'} - 1u) * u.K + ${second ? 'w_off' : 'u.w_offset'};`).join('\n')}
${stageX === undefined
    ? ms.map((m) => `  let xrow${m} = min(${m}u, u.M - 1u) * u.x_stride + u.x_offset;`).join('\n')
    : '  let kq = (u.K + 3u) >> 2u;'}
${stageLoads ? `${stageLoads}
` : ''}${prologue ? `${prologue}
` : ''}${staging ? `${staging}
` : ''}${each((m, r) => `  var acc${m}_${r} = vec4<f32>(0.0);`)}
${second ? branch('  ', (j) => loopOver(wName(j))) : loopOver('w')}
${reduce}
}
`;
  return B.shader(label, source);
}

export const gemvShader = defineKernel('matmul_gemv', build_gemvShader);
