// Tiled GEMM for larger M (prefill). A workgroup computes a BM×BN tile of y; each thread a TM×TN register
// block (rows split in groups of 4 strided by BM/(TM/4), columns likewise, so the vec4 reads of workgroup
// memory are conflict-free). K advances in steps of BK: the next x and W slabs are fetched into registers
// while the current ones are multiplied, then written to workgroup memory transposed (k-major) with W unpacked
// to f32 — into the other of two buffers when double buffering fits, so each step needs one barrier.
// Out-of-range rows, columns and the K tail are zero-filled on load and skipped on store.
import type { KernelShader } from '../../runtime/program.js';
import { weightLoadWgsl } from '../weight-dtype.js';
import { type WeightDtype } from '@latentwire/model';
import { gemmBindings, unroll, weightUnpackWgsl, xLoadWgsl, type MatmulAlign } from './common.js';
import { defineKernel } from '../../runtime/define-kernel.js';

export interface GemmTile {
  readonly BM: number;
  readonly BN: number;
  readonly BK: number;
  /** Register block: multiples of 4. */
  readonly TM: number;
  readonly TN: number;
  /** Unroll the BK loop in the source (default true). */
  readonly unrollK?: boolean;
}

/**
 * Tile shapes from largest to smallest; the launcher takes the largest that still makes enough workgroups.
 * On an H100 (Dawn/Vulkan) the 128×128 tile with 8×8 per thread and an unrolled K step reached 54-59% of the
 * f32 FMA peak at M = 2048; BK = 8 or a K loop left in the source cost 30-60%.
 */
export const GEMM_TILES = {
  /** 256 threads, 32 KiB double-buffered. */
  t128x128: { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  /** 64 threads, 16 KiB double-buffered: 4× the workgroups for mid-size M or narrow N. */
  t64x64: { BM: 64, BN: 64, BK: 16, TM: 8, TN: 8 },
  /** 128 threads, for M just past the GEMV range. */
  t32x64: { BM: 32, BN: 64, BK: 32, TM: 4, TN: 4 },
} as const satisfies Record<string, GemmTile>;
export type GemmTileName = keyof typeof GEMM_TILES;

export function gemmInvocations(t: GemmTile): number {
  return (t.BM / t.TM) * (t.BN / t.TN);
}

/** Workgroup memory of one x + W slab buffer, in bytes. */
export function gemmSlabBytes(t: GemmTile): number {
  return (t.BM + t.BN) * t.BK * 4;
}

export interface GemmVariant {
  readonly dtype: WeightDtype; readonly align: MatmulAlign; readonly tile: GemmTile; readonly doubleBuffer: boolean; readonly accumulate: boolean;
}

function build_gemmShader({ dtype, align, tile, doubleBuffer, accumulate }: GemmVariant): KernelShader {
  const { BM, BN, BK, TM, TN } = tile;
  const unrollK = tile.unrollK ?? true;
  if (TM % 4 !== 0 || TN % 4 !== 0 || BM % TM !== 0 || BN % TN !== 0) throw new RangeError(`matmul: bad GEMM tile ${JSON.stringify(tile)}`);
  const WG = gemmInvocations(tile);
  const NTX = BN / TN;
  const HM = TM / 4, HN = TN / 4; // groups of 4 rows / columns per thread
  const SM = BM / HM, SN = BN / HN; // stride between a thread's groups
  const NB = doubleBuffer ? 2 : 1;
  const A_BUF = (BK * BM) / 4, B_BUF = (BK * BN) / 4; // vec4s per buffer
  const vpw = dtype === 'f32' ? 4 : 8;

  // ---- global -> register slots, register -> workgroup memory (k-major) ----
  type Slot = { decl: string; load: string; store: string };
  const slots: Slot[] = [];
  const guardSlot = (total: number, j: number, body: string) => ((j + 1) * WG > total ? `if (lid + ${j * WG}u < ${total}u) {\n${body}\n}` : body);
  // x: BM rows × BK
  if (align.vecX) {
    const total = (BM * BK) / 4;
    for (let j = 0; j < Math.ceil(total / WG); j++) {
      const v = `(lid + ${j * WG}u)`;
      slots.push({
        decl: `var rx${j} = vec4<f32>(0.0);\n  let xr${j} = ${v} % ${BM}u;\n  let xk${j} = (${v} / ${BM}u) * 4u;`,
        load: guardSlot(total, j, `rx${j} = vec4<f32>(0.0);
if (m0 + xr${j} < u.M && KK + xk${j} < ke) { rx${j} = x4((m0 + xr${j}) * u.x_stride + u.x_offset + KK + xk${j}); }`),
        store: guardSlot(total, j, unroll(4, (i) => `As[BUF * ${A_BUF}u + (xk${j} + ${i}u) * ${BM / 4}u + xr${j} / 4u][xr${j} % 4u] = rx${j}[${i}];`)),
      });
    }
  } else {
    const total = BM * BK;
    for (let j = 0; j < Math.ceil(total / WG); j++) {
      const e = `(lid + ${j * WG}u)`;
      slots.push({
        decl: `var rx${j} = 0.0;\n  let xr${j} = ${e} % ${BM}u;\n  let xk${j} = ${e} / ${BM}u;`,
        load: guardSlot(total, j, `rx${j} = 0.0;
if (m0 + xr${j} < u.M && KK + xk${j} < ke) { rx${j} = x[(m0 + xr${j}) * u.x_stride + u.x_offset + KK + xk${j}]; }`),
        store: guardSlot(total, j, `As[BUF * ${A_BUF}u + xk${j} * ${BM / 4}u + xr${j} / 4u][xr${j} % 4u] = rx${j};`),
      });
    }
  }
  // W: BN rows × BK
  if (align.vecW) {
    const total = (BN * BK) / vpw;
    for (let j = 0; j < Math.ceil(total / WG); j++) {
      const v = `(lid + ${j * WG}u)`;
      const addr = `((n0 + wc${j}) * u.K + u.w_offset + KK + wk${j}) >> ${vpw === 8 ? 3 : 2}u`;
      const unpacked =
        vpw === 8
          ? `let lo = w_lo(rw${j});\nlet hi = w_hi(rw${j});\n` +
            unroll(8, (i) => `Bs[BUF * ${B_BUF}u + (wk${j} + ${i}u) * ${BN / 4}u + wc${j} / 4u][wc${j} % 4u] = ${i < 4 ? 'lo' : 'hi'}[${i % 4}];`)
          : `let f = w_f32(rw${j});\n` +
            unroll(4, (i) => `Bs[BUF * ${B_BUF}u + (wk${j} + ${i}u) * ${BN / 4}u + wc${j} / 4u][wc${j} % 4u] = f[${i}];`);
      slots.push({
        decl: `var rw${j} = vec4<u32>(0u);\n  let wc${j} = ${v} % ${BN}u;\n  let wk${j} = (${v} / ${BN}u) * ${vpw}u;`,
        load: guardSlot(total, j, `rw${j} = vec4<u32>(0u);
if (n0 + wc${j} < u.N && KK + wk${j} < ke) { rw${j} = w[${addr}]; }`),
        store: guardSlot(total, j, `{\n${unpacked}\n}`),
      });
    }
  } else {
    const total = BN * BK;
    for (let j = 0; j < Math.ceil(total / WG); j++) {
      const e = `(lid + ${j * WG}u)`;
      slots.push({
        decl: `var rw${j} = 0.0;\n  let wc${j} = ${e} % ${BN}u;\n  let wk${j} = ${e} / ${BN}u;`,
        load: guardSlot(total, j, `rw${j} = 0.0;
if (n0 + wc${j} < u.N && KK + wk${j} < ke) { rw${j} = weight_at((n0 + wc${j}) * u.K + u.w_offset + KK + wk${j}); }`),
        store: guardSlot(total, j, `Bs[BUF * ${B_BUF}u + wk${j} * ${BN / 4}u + wc${j} / 4u][wc${j} % 4u] = rw${j};`),
      });
    }
  }
  const loadAll = (k: string) => slots.map((s) => s.load.replaceAll('KK', k)).join('\n');
  const storeAll = (buf: string) => slots.map((s) => s.store.replaceAll('BUF', buf)).join('\n');

  // ---- the multiply of one slab ----
  const rows = [...Array(TM).keys()];
  const hn = [...Array(HN).keys()];
  const step = (kk: string) => `${unroll(HM, (h) => `      let a${h} = As[abase + ${kk} * ${BM / 4}u + ${(h * SM) / 4}u];`)}
${unroll(HN, (h) => `      let b${h} = Bs[bbase + ${kk} * ${BN / 4}u + ${(h * SN) / 4}u];`)}
${rows.map((i) => hn.map((h) => `      acc${i}_${h} = fma(vec4<f32>(a${Math.floor(i / 4)}[${i % 4}]), b${h}, acc${i}_${h});`).join('\n')).join('\n')}`;
  const compute = `{
      let abase = cur * ${A_BUF}u + ty;
      let bbase = cur * ${B_BUF}u + tx;
${unrollK ? unroll(BK, (kk) => `      {\n${step(`${kk}u`)}\n      }`) : `      for (var kk = 0u; kk < ${BK}u; kk++) {\n${step('kk')}\n      }`}
    }`;

  const epilogue = rows
    .map((i) => {
      const row = `m0 + ${Math.floor(i / 4) * SM + (i % 4)}u + ty * 4u`;
      return `  {
    let row = ${row};
    if (row < u.M) {
      let base = row * u.y_stride + u.y_offset + wg.z * u.split_stride;
${hn.map((h) => unroll(4, (c) => `      { let col = n0 + ${h * SN + c}u + tx * 4u; if (col < u.N) { y[base + col] = ${accumulate ? 'y[base + col] + ' : ''}acc${i}_${h}[${c}]; } }`)).join('\n')}
    }
  }`;
    })
    .join('\n');

  const mainLoop = doubleBuffer
    ? `  var cur = 0u;
  for (var k0 = kb; k0 < ke; k0 += ${BK}u) {
    let more = k0 + ${BK}u < ke;
    if (more) {
${loadAll(`(k0 + ${BK}u)`)}
    }
    ${compute}
    if (more) {
${storeAll('(1u - cur)')}
    }
    workgroupBarrier();
    cur = 1u - cur;
  }`
    : `  let cur = 0u;
  for (var k0 = kb; k0 < ke; k0 += ${BK}u) {
    let more = k0 + ${BK}u < ke;
    if (more) {
${loadAll(`(k0 + ${BK}u)`)}
    }
    ${compute}
    workgroupBarrier();
    if (more) {
${storeAll('0u')}
    }
    workgroupBarrier();
  }`;

  const label = `matmul_gemm_${dtype}_${BM}x${BN}x${BK}_${TM}x${TN}${unrollK ? '' : '_loop'}${doubleBuffer ? '_db' : ''}${align.vecX ? '_vx' : ''}${align.vecW ? '_vw' : ''}${accumulate ? '_acc' : ''}`;
  const source = /* wgsl */ `
${gemmBindings(align).wgsl}
${xLoadWgsl(align)}
${align.vecW ? weightUnpackWgsl(dtype) : weightLoadWgsl(dtype, 'w')}
var<workgroup> As: array<vec4<f32>, ${NB * A_BUF}>;
var<workgroup> Bs: array<vec4<f32>, ${NB * B_BUF}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % ${NTX}u;
  let ty = lid / ${NTX}u;
  let n0 = wg.x * ${BN}u;
  let m0 = wg.y * ${BM}u;
  // split-K: this workgroup's K range (the whole of K unsplit)
  let kb = wg.z * u.k_split;
  let ke = min(u.K, kb + u.k_split);
${rows.map((i) => hn.map((h) => `  var acc${i}_${h} = vec4<f32>(0.0);`).join('\n')).join('\n')}
  ${slots.map((s) => s.decl).join('\n  ')}
${loadAll('kb')}
${storeAll('0u')}
  workgroupBarrier();
${mainLoop}
${epilogue}
}
`;
  return gemmBindings(align).shader(label, source);
}

export const gemmShader = defineKernel('matmul_gemm', build_gemmShader);
