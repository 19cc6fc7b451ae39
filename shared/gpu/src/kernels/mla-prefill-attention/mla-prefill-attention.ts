// MLA prefill attention in the naive order (per-head keys k_nope | shared k_pe, values from kv_b_proj), tiled
// FlashAttention-style with an online softmax and a causal mask; see the .wgsl file for bindings and layout.
// Head dims and tile sizes are compile-time; prompt length, prefix length, scale and strides are uniforms, so
// every prompt length (and every chunk of a chunked prefill) shares one pipeline per model.
import { readFileSync } from 'node:fs';
import type { BufferBinding, KernelProgram, KernelShader } from '../../runtime/program.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { MLA_PREFILL_BINDINGS, MLA_PREFILL_UNIFORMS } from './mla-prefill-bindings.js';
import {
  DEFAULT_MLA_PREFILL_MMA_ROWS, mlaPrefillMmaShader, mlaPrefillMmaUnfitReason, mlaPrefillMmaWorkgroupBytes, mlaPrefillMmaWorkgroupSize, type MlaPrefillMmaRows,
} from './mla-prefill-attention-mma.js';

const WGSL = readFileSync(new URL('./mla-prefill-attention.wgsl', import.meta.url), 'utf8');

const UNIFORMS = MLA_PREFILL_UNIFORMS;
const BINDINGS = MLA_PREFILL_BINDINGS;

/** Per-head attention dims of an MLA layer (qk_nope_head_dim, qk_rope_head_dim, v_head_dim). */
export interface MlaHeadDims {
  readonly nope: number;
  readonly rope: number;
  readonly v: number;
}

/** Tiling: `bq` query rows per workgroup (multiple of 4), `bk` keys per tile, `threads` per workgroup. */
export interface MlaPrefillTiles {
  readonly bq: number;
  readonly bk: number;
  readonly threads: number;
}

export type WorkgroupLimits = Pick<
  GPUSupportedLimits,
  'maxComputeWorkgroupStorageSize' | 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX'
>;

/**
 * Tilings tried in order, largest first; the first that fits the device wins. 32×16 with 128 threads is sized for
 * DeepSeek-V2(-Lite) heads (192/128) in 48 KiB (41,728 B); the smaller ones serve 32 KiB devices (lavapipe) and
 * bigger heads. Measured on an H100 (Dawn/Vulkan, V2-Lite heads, H 16, T 4096): 32×16/128 8.2 ms; tilings that give
 * a thread more keys or dims (16×32/64, 32×16/64, 16×16/32) were 3-15× slower: each thread also holds its share of
 * the next K/V tile in registers (BK·(DQK+DV)/threads floats), so fewer threads per tile spill.
 */
export const MLA_PREFILL_TILINGS: readonly MlaPrefillTiles[] = [
  { bq: 32, bk: 16, threads: 128 },
  { bq: 16, bk: 16, threads: 64 },
  { bq: 16, bk: 8, threads: 32 },
  { bq: 8, bk: 8, threads: 16 },
  { bq: 4, bk: 4, threads: 4 },
];

interface Layout {
  readonly bq4: number;
  readonly cg: number;
  readonly tk: number;
  readonly td: number;
  readonly dvp: number;
  readonly bkp: number;
  readonly kvWords: number;
  readonly kl: number;
  readonly vl: number;
  readonly ql: number;
}

function layout(dims: MlaHeadDims, tiles: MlaPrefillTiles): Layout {
  const { bq, bk, threads } = tiles;
  if (![bq, bk, threads].every((n) => Number.isInteger(n) && n > 0) || bq % 4 !== 0) {
    throw new RangeError(`mlaPrefillAttention: bad tiling ${JSON.stringify(tiles)} (bq must be a multiple of 4)`);
  }
  const bq4 = bq / 4;
  if (threads % bq4 !== 0 || bk % (threads / bq4) !== 0) {
    throw new RangeError(
      `mlaPrefillAttention: tiling ${JSON.stringify(tiles)} needs threads a multiple of bq/4 and bk a multiple of threads/(bq/4)`,
    );
  }
  const cg = threads / bq4;
  const td = Math.ceil(dims.v / cg);
  const dvp = td * cg;
  const bkp = bk + 1;
  const dqk = dims.nope + dims.rope;
  return {
    bq4, cg, tk: bk / cg, td, dvp, bkp, kvWords: Math.max(dqk * bkp, bk * dvp),
    kl: Math.ceil((bk * dqk) / threads), vl: Math.ceil((bk * dvp) / threads), ql: Math.ceil((bq * dqk) / threads),
  };
}

/** Workgroup memory one workgroup of this tiling uses, in bytes. */
export function mlaPrefillWorkgroupBytes(dims: MlaHeadDims, tiles: MlaPrefillTiles): number {
  const l = layout(dims, tiles);
  return 4 * ((dims.nope + dims.rope) * tiles.bq + l.kvWords + 2 * tiles.bk * tiles.bq);
}

function fits(dims: MlaHeadDims, tiles: MlaPrefillTiles, limits: WorkgroupLimits): boolean {
  return (
    tiles.threads <= limits.maxComputeInvocationsPerWorkgroup &&
    tiles.threads <= limits.maxComputeWorkgroupSizeX &&
    mlaPrefillWorkgroupBytes(dims, tiles) <= limits.maxComputeWorkgroupStorageSize
  );
}

/** The largest tiling of MLA_PREFILL_TILINGS that fits the device's workgroup limits. */
export function mlaPrefillTiles(dims: MlaHeadDims, limits: WorkgroupLimits): MlaPrefillTiles {
  checkDims(dims);
  const t = MLA_PREFILL_TILINGS.find((c) => fits(dims, c, limits));
  if (!t) {
    throw new RangeError(
      `mlaPrefillAttention: no tiling fits ${limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory for heads ${JSON.stringify(dims)}`,
    );
  }
  return t;
}

function checkDims(dims: MlaHeadDims): void {
  for (const k of ['nope', 'rope', 'v'] as const) {
    if (!Number.isInteger(dims[k]) || dims[k] < 1) throw new RangeError(`mlaPrefillAttention: ${k} = ${dims[k]}`);
  }
}

/** The compiled variant: one per (head dims, tiling). */
function build_mlaPrefillAttentionShader(
  { dims, tiles }: { readonly dims: MlaHeadDims; readonly tiles: MlaPrefillTiles },
): KernelShader & { readonly uniforms: typeof UNIFORMS } {
  checkDims(dims);
  const l = layout(dims, tiles);
  const consts: Record<string, number> = {
    NOPE: dims.nope, ROPE: dims.rope, DQK: dims.nope + dims.rope, DV: dims.v,
    BQ: tiles.bq, BK: tiles.bk, NT: tiles.threads, BQ4: l.bq4, CG: l.cg, TK: l.tk, TD: l.td, DVP: l.dvp, BKP: l.bkp,
    KV_WORDS: l.kvWords, KL: l.kl, VL: l.vl, QL: l.ql,
  };
  const header = Object.entries(consts).map(([k, v]) => `const ${k}: u32 = ${v}u;`).join('\n');
  return BINDINGS.shader(
    `mla_prefill_attention_n${dims.nope}_r${dims.rope}_v${dims.v}_q${tiles.bq}_k${tiles.bk}_t${tiles.threads}`,
    `${header}\n${BINDINGS.wgsl}${WGSL}`,
  );
}

export interface MlaPrefillAttentionArgs extends MlaHeadDims {
  /** [qLen, heads, nope + rope] f32: q_nope | q_pe, q_pe already roped. */
  readonly q: GPUBuffer | BufferBinding;
  /** [kvLen, heads, nope + v] f32: kv_b_proj(c), k_nope | v per head. */
  readonly kv: GPUBuffer | BufferBinding;
  /** [kvLen, kvLoraRank + rope] f32: normalized c | roped k_pe (the layer's latent KV rows). */
  readonly latent: GPUBuffer | BufferBinding;
  /** [qLen, heads, v] f32, written. */
  readonly out: GPUBuffer | BufferBinding;
  readonly heads: number;
  readonly kvLoraRank: number;
  /** Query rows in this dispatch. */
  readonly qLen: number;
  /** Keys before query row 0 (a chunked prefill's prefix); row i attends to keys 0..=qPos0+i. Default 0. */
  readonly qPos0?: number;
  /** Key rows readable in kv and latent; default qPos0 + qLen. */
  readonly kvLen?: number;
  /** Softmax scale: 1/sqrt(nope + rope), times mscale² under YaRN. */
  readonly scale: number;
  /**
   * The device runs subgroup-matrix kernels (gpu.matmulLimits.subgroupMatrix): the tensor-core variant is used
   * where the head dims and strides allow it (mlaPrefillMmaUnfitReason), the portable one otherwise.
   */
  readonly subgroupMatrix?: boolean;
  /**
   * Query rows a workgroup of the subgroup-matrix variant takes (PREFILL_ATTENTION_ROWS; default 128, 64 where the
   * limits do not hold 128's workgroups).
   */
  readonly mmaRows?: MlaPrefillMmaRows;
  /** Tiling of the portable kernel (from mlaPrefillTiles), or the device limits to pick one from. */
  readonly tiles?: MlaPrefillTiles;
  readonly limits?: WorkgroupLimits;
  /** Element strides, defaulting to the dense layouts above. */
  readonly strides?: Partial<{
    qRow: number; qHead: number; kvRow: number; kvHead: number; latentRow: number; kpeOffset: number; outRow: number; outHead: number;
  }>;
}

function bindingBytes(b: GPUBuffer | BufferBinding): number | undefined {
  if ('size' in b && typeof b.size === 'number' && !('buffer' in b)) return b.size;
  const bb = b as BufferBinding;
  if (bb.size !== undefined) return bb.size;
  return typeof bb.buffer?.size === 'number' ? bb.buffer.size - (bb.offset ?? 0) : undefined;
}

function checkExtent(name: string, b: GPUBuffer | BufferBinding, rows: number, lastInRow: number, rowStride: number): void {
  if (rows === 0) return;
  const need = 4 * ((rows - 1) * rowStride + lastInRow);
  const have = bindingBytes(b);
  if (have !== undefined && have < need) {
    throw new RangeError(`mlaPrefillAttention: ${name} holds ${have} bytes, needs ${need}`);
  }
}

/** One dispatch: workgroups [ceil(qLen / bq), heads]. */
export function mlaPrefillAttention(a: MlaPrefillAttentionArgs): KernelProgram<typeof UNIFORMS> {
  checkDims(a);
  const dims: MlaHeadDims = { nope: a.nope, rope: a.rope, v: a.v };
  const qPos0 = a.qPos0 ?? 0;
  const kvLen = a.kvLen ?? qPos0 + a.qLen;
  for (const [k, v] of Object.entries({ heads: a.heads, qLen: a.qLen, qPos0, kvLen, kvLoraRank: a.kvLoraRank })) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`mlaPrefillAttention: ${k} = ${v}`);
  }
  if (a.heads < 1) throw new RangeError(`mlaPrefillAttention: heads = ${a.heads}`);
  if (a.qLen > 0 && kvLen < 1) throw new RangeError('mlaPrefillAttention: no keys (kvLen 0)');
  if (!Number.isFinite(a.scale)) throw new RangeError(`mlaPrefillAttention: scale = ${a.scale}`);
  const dqk = a.nope + a.rope;
  const st = {
    qRow: a.heads * dqk, qHead: dqk,
    kvRow: a.heads * (a.nope + a.v), kvHead: a.nope + a.v,
    latentRow: a.kvLoraRank + a.rope, kpeOffset: a.kvLoraRank,
    outRow: a.heads * a.v, outHead: a.v,
    ...a.strides,
  };
  const keys = Math.min(kvLen, qPos0 + a.qLen);
  checkExtent('q', a.q, a.qLen, (a.heads - 1) * st.qHead + dqk, st.qRow);
  checkExtent('kv', a.kv, keys, (a.heads - 1) * st.kvHead + a.nope + a.v, st.kvRow);
  checkExtent('latent', a.latent, keys, st.kpeOffset + a.rope, st.latentRow);
  checkExtent('out', a.out, a.qLen, (a.heads - 1) * st.outHead + a.v, st.outRow);
  const onMatrices = a.subgroupMatrix === true && mlaPrefillMmaUnfitReason(dims) === null &&
    [st.qRow, st.qHead, st.kvRow, st.kvHead, st.latentRow, st.kpeOffset].every((n) => n % 4 === 0);
  const tiles = onMatrices ? undefined : a.tiles ?? (a.limits ? mlaPrefillTiles(dims, a.limits) : undefined);
  if (!onMatrices && !tiles) throw new RangeError('mlaPrefillAttention: pass tiles or limits');
  // 128 rows where the device holds their workgroups (256 invocations, ~47 KiB at V2's head dims), else 64
  const fitsRows = (rows: MlaPrefillMmaRows) => !a.limits || (mlaPrefillMmaWorkgroupSize(rows) <= a.limits.maxComputeInvocationsPerWorkgroup &&
    mlaPrefillMmaWorkgroupBytes(dims, rows) <= a.limits.maxComputeWorkgroupStorageSize);
  const wanted = a.mmaRows ?? DEFAULT_MLA_PREFILL_MMA_ROWS;
  const mmaRows: MlaPrefillMmaRows = fitsRows(wanted) ? wanted : 64;
  return {
    shader: tiles ? mlaPrefillAttentionShader({ dims, tiles }) : mlaPrefillMmaShader({ dims, rows: mmaRows }),
    buffers: BINDINGS.buffers({ q: a.q, kv: a.kv, latent: a.latent, out: a.out }),
    uniformValues: {
      q_len: a.qLen, kv_len: kvLen, q_pos0: qPos0, scale_log2e: a.scale * Math.LOG2E,
      q_row_stride: st.qRow, q_head_stride: st.qHead,
      kv_row_stride: st.kvRow, kv_head_stride: st.kvHead,
      lat_row_stride: st.latentRow, kpe_offset: st.kpeOffset,
      out_row_stride: st.outRow, out_head_stride: st.outHead,
    },
    workgroups: [Math.ceil(a.qLen / (tiles ? tiles.bq : mmaRows)), a.heads],
  };
}

/**
 * Work of one dispatch, for turning a measured time into a rate (the prefill bench): multiply-adds counted as 2
 * FLOPs over the causal pairs actually needed (QK over nope+rope, PV over v), and the bytes of q, kv, latent and
 * out read or written once (the least traffic; the kernel re-reads K/V tiles per query tile from L2).
 */
export function mlaPrefillAttentionCost(a: {
  readonly heads: number; readonly nope: number; readonly rope: number; readonly v: number; readonly kvLoraRank: number;
  readonly qLen: number; readonly qPos0?: number; readonly kvLen?: number;
}): { flops: number; bytes: number; pairs: number } {
  const qPos0 = a.qPos0 ?? 0;
  const kvLen = a.kvLen ?? qPos0 + a.qLen;
  let pairs = 0;
  for (let i = 0; i < a.qLen; i++) pairs += Math.min(kvLen, qPos0 + i + 1);
  const dqk = a.nope + a.rope;
  const keys = Math.min(kvLen, qPos0 + a.qLen);
  return {
    pairs: pairs * a.heads,
    flops: 2 * pairs * a.heads * (dqk + a.v),
    bytes: 4 * (a.qLen * a.heads * (dqk + a.v) + keys * (a.heads * (a.nope + a.v) + a.kvLoraRank + a.rope)),
  };
}

export const mlaPrefillAttentionShader = defineKernel('mla_prefill_attention', build_mlaPrefillAttentionShader);
