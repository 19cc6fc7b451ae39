// Per-head matmul of the absorbed MLA decode step: y[b, h, :] = x[b, h, :] · W_h with W_h [K, N] row-major in
// its stored dtype. Used twice per layer: q_lat = q_nope · W_UK (K = qk_nope, N = kv_lora_rank, W_UK read in
// place from kv_b_proj) and o = ō · W_UVᵀ (K = kv_lora_rank, N = v_head_dim, the transposed copy made at
// load). Strides and offsets are uniforms, so x and y can be head slices of wider rows. The second use can read
// the attention's split-KV partials and merge them while staging (the `merge` form), in place of a merge dispatch.
// Two engines: the portable kernel (head-matmul.wgsl, f32 FMA), and from HEAD_MATMUL_MMA_MIN_BATCH rows where
// the caller says the adapter has subgroup matrices, head-matmul-mma.wgsl (f16 16×16×16 tensor-core products).
import type { BufferBinding, KernelProgram, KernelShader } from '@latentwire/gpu';
import { bindings, fillWgsl, loadWgsl, pair16Wgsl, shaderBuffers, SUBGROUP_MATRIX_WGSL } from '@latentwire/gpu';
import { kvAppendEmbed, kvAppendRowWgsl, weightLoadWgsl, type GpuTensor, type KvAppendArgs, type KvAppendEmbed, type WeightDtype } from '@latentwire/gpu/kernels';
import { defineKernel } from '@latentwire/gpu';
import { MAX_DECODE_SPLITS } from '../grouped-decode-attention/grouped-decode-attention.js';

const BODY = loadWgsl(new URL('./head-matmul.wgsl', import.meta.url));
const MMA_BODY = loadWgsl(new URL('./head-matmul-mma.wgsl', import.meta.url));

/**
 * A workgroup's shape: CT column threads (4 columns each) × KS K slices, BB batch rows accumulated (the weight is
 * re-read once per block of this many sequences), KC values of k staged per round.
 */
interface HeadMatmulShape { readonly CT: number; readonly KS: number; readonly BB: number; readonly KC: number }
const SHAPES = {
  // 64 columns × 4 rows a workgroup, k staged 64 at a time (BB·KC = WG: one load a thread a round)
  block: { CT: 16, KS: 16, BB: 4, KC: 64 },
  // batches of one block or less: 16 columns of one row a workgroup, its x staged whole (K ≤ 512: one round), so
  // a decode step at batch 1 launches 4× the workgroups, each with no barrier inside its K loop. The block shape
  // ran W_UV (2 MB) in ~27 µs at batch 1 on the H200 (32 workgroups, 8 rounds of load, barrier, load, barrier).
  row: { CT: 4, KS: 64, BB: 1, KC: 512 },
  // batch 1: 8 columns a workgroup, K split 128 ways (twice the workgroups, half the K rows a thread). On the H100
  // (12-06, decode steps at 1K, same calls) batch 1 233.9 / 234.3 → 236.0 / 236.7 and 233.7 / 234.1 → 235.9 / 238.0
  // tokens/s; at batch 4 the same shape was 5% slower (442 → 422), so batches 2–4 keep 16 columns
  row1: { CT: 2, KS: 128, BB: 1, KC: 512 },
} as const satisfies Record<string, HeadMatmulShape>;
type HeadMatmulShapeName = keyof typeof SHAPES;
/** Threads a workgroup, every shape. */
const WG = 256;
/** Largest batch the row shape takes (one block of the block shape, whose grid it has 4× of). */
const HEAD_MATMUL_ROW_MAX_BATCH = SHAPES.block.BB;
/** Largest batch whose absorbed query takes the KV append into its dispatch (HeadMatmulArgs.append). */
export const HEAD_MATMUL_APPEND_MAX_BATCH = HEAD_MATMUL_ROW_MAX_BATCH;

const UNIFORMS = {
  batch: 'u32', k: 'u32', n: 'u32',
  x_offset: 'u32', x_row_stride: 'u32', x_head_stride: 'u32',
  w_offset: 'u32', w_head_stride: 'u32', w_row_stride: 'u32',
  y_offset: 'u32', y_row_stride: 'u32', y_head_stride: 'u32',
} as const;
const ROPE_UNIFORMS = {
  ...UNIFORMS, rope_block: 'u32', rope_half: 'u32', rope_in: 'u32', rope_out: 'u32', attention_factor: 'f32',
} as const;
const MERGE_UNIFORMS = { ...UNIFORMS, heads: 'u32', num_splits: 'u32' } as const;

// rows b0 .. b0 + BB of head h: x's pairs at rope_in + 2i roped at the row's position into y at rope_out + 2i
const ROPE_WGSL = /* wgsl */ `fn rope_rows(h: u32, b0: u32, lid: u32) {
  for (var i = lid; i < BB * u.rope_half; i += WG) {
    let b = b0 + i / u.rope_half;
    let j = i % u.rope_half;
    if (b < u.batch) {
      let angle = f32(positions[b]) * inv_freq[j];
      let c = cos(angle) * u.attention_factor;
      let s = sin(angle) * u.attention_factor;
      let src = u.x_offset + b * u.x_row_stride + h * u.x_head_stride + u.rope_in + 2u * j;
      let re = x[src];
      let im = x[src + 1u];
      let o = u.y_offset + b * u.y_row_stride + h * u.y_head_stride + u.rope_out + 2u * j;
      y[o] = re * c - im * s;
      y[o + 1u] = re * s + im * c;
    }
  }
}`;

/**
 * A walk over the splits s = 0 .. num_splits in order, the values `load(s)` issued 16 then 8 at a time before
 * `use(s, v)` takes them (a loop of one load a trip waited on each: 16 splits at batch 1, 1K context made W_UV's
 * merge 56 µs a layer on the H200, the step's slowest kernel), then one at a time.
 */
function splitWalkWgsl(load: (s: string) => string, use: (s: string, v: string) => string): string {
  const batch = (n: number) => `for (; s + ${n}u <= u.num_splits; s += ${n}u) {
    var v: array<f32, ${n}>;
    for (var j = 0u; j < ${n}u; j++) { v[j] = ${load('s + j')}; }
    for (var j = 0u; j < ${n}u; j++) { ${use('s + j', 'v[j]')} }
  }`;
  return `var s = 0u;
  ${batch(16)}
  ${batch(8)}
  for (; s < u.num_splits; s++) { ${use('s', load('s'))} }`;
}

// rows b0 .. b0 + BB of head h: each split's weight exp2(lse - max) and the rows' 1 / Σ weights, then x[b, h, k] as
// Σ_s weight_s · partial_s[k] · inv: grouped-decode-merge.wgsl's arithmetic in its order, so ō is its output bit for bit
const MERGE_WGSL = /* wgsl */ `//!include online-softmax
const MAX_SPLITS: u32 = ${MAX_DECODE_SPLITS}u;
var<workgroup> split_w: array<f32, BB * MAX_SPLITS>;
var<workgroup> split_inv: array<f32, BB>;
fn merge_prologue(h: u32, b0: u32, lid: u32) {
  let b = b0 + lid;
  if (lid < BB && b < u.batch) {
    let row = (b * u.heads + h) * u.num_splits;
    let w = lid * MAX_SPLITS;
    // the LSEs into split_w and their max, then the weights in place
    var m = MASKED;
    ${splitWalkWgsl((i) => `lse[row + ${i}]`, (i, v) => `m = max(m, ${v}); split_w[w + ${i}] = ${v};`)}
    var den = 0.0;
    for (var s = 0u; s < u.num_splits; s++) {
      let e = exp2(split_w[w + s] - m);
      split_w[w + s] = e;
      den += e;
    }
    split_inv[lid] = 1.0 / den;
  }
  workgroupBarrier();
}
fn x_at(b: u32, h: u32, k: u32, bb: u32) -> f32 {
  let first = u.x_offset + b * u.x_row_stride + h * u.x_head_stride + k;
  let w = bb * MAX_SPLITS;
  var acc = 0.0;
  ${splitWalkWgsl((i) => `x[first + (${i}) * u.k]`, (i, v) => `acc = fma(split_w[w + ${i}], ${v}, acc);`)}
  return acc * split_inv[bb];
}`;
const PLAIN_X_WGSL = /* wgsl */ `fn merge_prologue(h: u32, b0: u32, lid: u32) {}
fn x_at(b: u32, h: u32, k: u32, bb: u32) -> f32 { return x[u.x_offset + b * u.x_row_stride + h * u.x_head_stride + k]; }`;

const STORAGE = [['x', 'array<f32>'], ['w', 'array<u32>'], ['y', 'array<f32>', 'read_write']] as const;
const PLAIN = bindings(STORAGE, UNIFORMS);
/** The rope form also reads each row's position and the inverse frequencies. */
const ROPED_STORAGE = [...STORAGE, ['positions', 'array<u32>'], ['inv_freq', 'array<f32>']] as const;
const ROPED = bindings(ROPED_STORAGE, ROPE_UNIFORMS);
/** The merge form reads the splits' LSEs beside their partial outputs (x). */
const MERGED = bindings([...STORAGE, ['lse', 'array<f32>']], MERGE_UNIFORMS);

interface HeadMatmulVariant {
  readonly dtype: WeightDtype;
  readonly shape: HeadMatmulShapeName;
  /** The rope block beside the product (the absorbed query). */
  readonly rope: boolean;
  /** x is split-KV partials merged while staging (the attention output's W_UV). */
  readonly merge?: boolean;
  /** With rope (portable engine): the KV append's rows in one more column of workgroups (kvAppendEmbed's variant). */
  readonly append?: KvAppendEmbed['variant'];
  /** The device's one subgroup size, whose runs of lanes sum their ks partials by shuffles (HeadMatmulArgs.subgroupSize). */
  readonly subgroupSize?: number;
}

/**
 * Each thread's partials into workgroup memory; with subgroups of `sg` lanes (lane = (ks mod sg/CT)·CT + ct), first
 * summed over the subgroup's ks by xor shuffles (masks CT … sg/2), its first CT lanes storing one per column quad.
 */
function partialsWgsl(CT: number, sg: number): string {
  if (sg === 0) return 'for (var bb = 0u; bb < BB; bb++) { partial[(ks * BB + bb) * CT + ct] = acc[bb]; }';
  const masks: number[] = [];
  for (let m = CT; m < sg; m *= 2) masks.push(m);
  return `for (var bb = 0u; bb < BB; bb++) {
    var v = acc[bb];
    ${masks.map((m) => `v = v + subgroupShuffleXor(v, ${m}u);`).join('\n    ')}
    if (lid % SG_LANES < CT) { partial[((lid / SG_LANES) * BB + bb) * CT + ct] = v; }
  }`;
}

interface FormBindings { readonly wgsl: string; shader(label: string, source: string): KernelShader }

/** The bindings, and the rope, append and x readers both engines share (after their BB and WG constants). */
function formWgsl(rope: boolean, merge: boolean, append?: KvAppendEmbed['variant']): { B: FormBindings; wgsl: string; label: string } {
  if (rope && merge) throw new RangeError('headMatmul: the rope and merge forms exclude each other');
  if (append && !rope) throw new RangeError('headMatmul: the KV append runs beside the rope form only');
  // the append's row function reads the rope's positions and inverse frequencies too: one binding each
  const row = append ? kvAppendRowWgsl(append, WG) : null;
  const B: FormBindings = row
    ? bindings([...ROPED_STORAGE, ...row.storage.filter(([n]) => n !== 'positions' && n !== 'inv_freq')], { ...ROPE_UNIFORMS, ...row.uniforms })
    : rope ? ROPED : merge ? MERGED : PLAIN;
  return {
    B,
    label: `${rope ? '_rope' : ''}${merge ? '_merge' : ''}${row ? `_${row.label}` : ''}`,
    wgsl: `${B.wgsl}
${rope ? `fn is_rope_block(x: u32) -> bool { return x == u.rope_block; }
${ROPE_WGSL}` : `fn is_rope_block(x: u32) -> bool { return false; }
fn rope_rows(h: u32, b0: u32, lid: u32) {}`}
${row ? `${row.wgsl}
fn is_append_block(x: u32) -> bool { return x == u.rope_block + 1u; }
fn append_rows(b0: u32, lid: u32) {
  for (var r = 0u; r < BB; r++) {
    if (b0 + r < u.rows) { kv_row(b0 + r, lid); }
  }
}` : `fn is_append_block(x: u32) -> bool { return false; }
fn append_rows(b0: u32, lid: u32) {}`}
${merge ? MERGE_WGSL : PLAIN_X_WGSL}`,
  };
}

function build_headMatmulShader({ dtype, shape, rope, merge = false, append, subgroupSize }: HeadMatmulVariant): KernelShader {
  const { B, wgsl, label } = formWgsl(rope, merge, append);
  const { CT, KS, BB, KC } = SHAPES[shape];
  if (CT * KS !== WG || BB * CT > WG) throw new RangeError(`headMatmul: shape ${shape} does not fill ${WG} threads`);
  const sg = subgroupSize !== undefined && headMatmulShuffles(shape, subgroupSize) ? subgroupSize : 0;
  return B.shader(`head_matmul_${dtype}${shape === 'block' ? '' : `_${shape}`}${label}${sg ? '_sg' : ''}`, `${sg ? 'enable subgroups;\n' : ''}const CT: u32 = ${CT}u;
const KS: u32 = ${KS}u;
const WG: u32 = ${WG}u;
const BB: u32 = ${BB}u;
const KC: u32 = ${KC}u;
const SG_LANES: u32 = ${sg}u;
${wgsl}
${weightLoadWgsl(dtype, 'w')}
${fillWgsl(BODY, { PARTIALS: partialsWgsl(CT, sg) }, 'head-matmul.wgsl')}`);
}

/** Whether a shape's ks partials sum by shuffles in subgroups of `size` (each subgroup whole runs of CT columns, more than one ks). */
function headMatmulShuffles(shape: HeadMatmulShapeName, size: number): boolean {
  const { CT } = SHAPES[shape];
  return size > CT && size % CT === 0 && WG % size === 0;
}

// ---- the subgroup-matrix engine (head-matmul-mma.wgsl) ----

/** Columns and K values a workgroup stages at a time; its threads (4 subgroups of 32). */
const MMA_BN = 64;
const MMA_BK = 64;
const MMA_WG = 128;
/** Smallest batch the subgroup-matrix engine takes (a 16-row tile; below it most of each tile is padding). */
export const HEAD_MATMUL_MMA_MIN_BATCH = 16;
/**
 * Rows a workgroup: over a short K (W_UK's 128: 2 slabs) the batch rounded up to a tile, at most 64, so each
 * weight is read once up to batch 64; over a long one (W_UV's 512: 8 slabs) one tile, 4× the workgroups: at batch
 * 64 its 32 workgroups of 64 rows (2 column blocks × 16 heads) took 166 µs a layer on the H100, each a serial chain
 * of 8 slabs.
 */
const mmaRows = (batch: number, K: number) => (K > 2 * MMA_BK ? 16 : Math.min(64, Math.ceil(batch / 16) * 16));

interface HeadMatmulMmaVariant {
  readonly dtype: 'bf16' | 'f16';
  /** Rows a workgroup: 16, 32, 48 or 64. */
  readonly BM: number;
  readonly rope: boolean;
  readonly merge?: boolean;
}

function build_headMatmulMmaShader({ dtype, BM, rope, merge = false }: HeadMatmulMmaVariant): KernelShader {
  if (BM % 16 !== 0 || BM < 16 || BM > 64) throw new RangeError(`headMatmul (subgroup-matrix): BM ${BM}`);
  const { B, wgsl, label } = formWgsl(rope, merge);
  const TM = BM / 16;
  const XL = (BM * MMA_BK) / MMA_WG, WL = (MMA_BK * MMA_BN) / 2 / MMA_WG;
  const r = (n: number) => [...Array(n).keys()];
  // each thread's loads of the slab first (x values, weight pairs), then its f16 stores (fetching the next slab
  // into registers during the products, as the MoE kernels do, measured slower here: batch 64 24.84 vs 24.56 ms a
  // step on the H100, the register cost outweighing the overlap)
  const stage = [
    ...r(XL).map((i) => `let xv${i} = x_val(lid + ${i * MMA_WG}u, h, b0, k0);`),
    ...r(WL).map((j) => `let wv${j} = w_word(lid + ${j * MMA_WG}u, h, k0, n0);`),
    ...r(XL).map((i) => `xs[((lid + ${i * MMA_WG}u) / BK) * XSTR + (lid + ${i * MMA_WG}u) % BK] = f16(xv${i});`),
    ...r(WL).map((j) => `{
      let i = lid + ${j * MMA_WG}u;
      let o = (i / (BN / 2u)) * WSTR + (i % (BN / 2u)) * 2u;
      let p = w_pair16(wv${j});
      ws[o] = p.x; ws[o + 1u] = p.y;
    }`),
  ];
  const multiply = r(MMA_BK / 16).flatMap((q) => [
    `{`,
    `  let bm = subgroupMatrixLoad<RightT, row_major>(&ws, ${16 * q}u * WSTR + sg * 16u, WSTR);`,
    ...r(TM).map((i) => `  c${i} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<LeftT, row_major>(&xs, ${16 * i}u * XSTR + ${16 * q}u, XSTR), bm, c${i});`),
    `}`,
  ]);
  const write = r(TM).map((i) => `subgroupMatrixStore<row_major>(&out_tile, sg * 256u, c${i}, 16u);
  workgroupBarrier();
  for (var q = 0u; q < 8u; q++) {
    let idx = lane + 32u * q;
    let b = b0 + ${16 * i}u + idx / 16u;
    let n = n0 + sg * 16u + idx % 16u;
    if (b < u.batch && n < u.n) { y[u.y_offset + b * u.y_row_stride + h * u.y_head_stride + n] = out_tile[sg * 256u + idx]; }
  }
  workgroupBarrier();`);
  return B.shader(`head_matmul_mma_${dtype}_m${BM}${label}`, `${SUBGROUP_MATRIX_WGSL}
const BM: u32 = ${BM}u;
const BB: u32 = BM;
const BN: u32 = ${MMA_BN}u;
const BK: u32 = ${MMA_BK}u;
const XSTR: u32 = ${MMA_BK + 8}u;
const WSTR: u32 = ${MMA_BN + 8}u;
const WG: u32 = ${MMA_WG}u;
${wgsl}
${pair16Wgsl(dtype)}
${fillWgsl(MMA_BODY, {
    DECLARE: r(TM).map((i) => `var c${i} = ResT();`).join('\n  '),
    STAGE: stage.join('\n    '),
    MULTIPLY: multiply.join('\n    '),
    WRITE: write.join('\n  '),
  }, 'head-matmul-mma.wgsl')}`);
}

type Binding = GPUBuffer | BufferBinding;

export interface HeadMatmulArgs {
  readonly x: Binding;
  readonly weight: GpuTensor;
  readonly y: Binding;
  readonly batch: number;
  readonly heads: number;
  readonly K: number;
  readonly N: number;
  /** Elements (defaults: x and y dense [batch, heads, K|N]). */
  readonly xOffset?: number; readonly xRowStride?: number; readonly xHeadStride?: number;
  readonly yOffset?: number; readonly yRowStride?: number; readonly yHeadStride?: number;
  /** Weight element of W_0[0, 0]; heads wHeadStride apart, rows wRowStride apart (default dense [heads, K, N]). */
  readonly wOffset?: number; readonly wHeadStride?: number; readonly wRowStride?: number;
  /**
   * Also rope each head's slice x[b, h, inOffset .. + ropeDim) at positions[b] into y[b, h, outOffset ..), as
   * the rope kernel does (the absorbed query's q_pe beside its q_nope·W_UK), in the same dispatch.
   */
  readonly rope?: {
    readonly positions: Binding; readonly invFreq: Binding; readonly ropeDim: number; readonly inOffset: number; readonly outOffset: number;
    readonly attentionFactor: number;
  };
  /**
   * x holds grouped decode attention's split partials [batch, heads, numSplits, K] (dense; x strides and offset
   * are then set here) and `lse` their LSEs [batch, heads, numSplits]: x is their merge, computed while staging.
   */
  readonly merge?: { readonly lse: Binding; readonly numSplits: number };
  /**
   * With rope, at batches of HEAD_MATMUL_APPEND_MAX_BATCH or fewer (the portable row shape): also run kvAppend(append)
   * in the same dispatch, one more column of workgroups (the decode step's latent rows normed, roped and written to
   * the cache beside the absorbed query: both need only the step's projections, and as two dispatches the append's
   * one workgroup a row was ~11 µs of the batch-1 layer's chain). It shares the rope's positions, inverse
   * frequencies and attention factor.
   */
  readonly append?: KvAppendArgs;
  /**
   * 'subgroup-matrix': tensor-core products (f16 operands) from HEAD_MATMUL_MMA_MIN_BATCH rows, where the weight is
   * bf16 / f16 at even offset and strides and N is even; the portable kernel otherwise. The caller says the
   * device has subgroup matrices (the attention's engine). Default 'f32': the portable kernel.
   */
  readonly engine?: 'f32' | 'subgroup-matrix';
  /**
   * The device's one subgroup size (MatmulLimits.subgroupSize): the portable kernel sums each subgroup's share of
   * the K split by shuffles before the finishing thread adds the subgroups' (another order than KS adds in turn).
   */
  readonly subgroupSize?: number;
}

/** Whether a call runs the subgroup-matrix engine. */
function runsMma(a: HeadMatmulArgs, wOffset: number, wHead: number, wRow: number): boolean {
  const d = a.weight.dtype;
  return a.engine === 'subgroup-matrix' && a.batch >= HEAD_MATMUL_MMA_MIN_BATCH && (d === 'bf16' || d === 'f16')
    && [wOffset, wHead, wRow, a.N].every((v) => v % 2 === 0);
}

export function headMatmul(a: HeadMatmulArgs): KernelProgram {
  for (const [k, v] of Object.entries({ batch: a.batch, heads: a.heads, K: a.K, N: a.N })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`headMatmul: ${k} = ${v} must be a positive integer`);
  }
  const wRow = a.wRowStride ?? a.N;
  const wHead = a.wHeadStride ?? a.K * wRow;
  const wOffset = a.wOffset ?? 0;
  const lastWeight = wOffset + (a.heads - 1) * wHead + (a.K - 1) * wRow + a.N;
  const stored = a.weight.shape.reduce((p, d) => p * d, 1);
  if (lastWeight > stored) throw new RangeError(`headMatmul: the weight holds ${stored} values, the strides reach ${lastWeight}`);
  const r = a.rope;
  if (r && (!Number.isInteger(r.ropeDim) || r.ropeDim < 2 || r.ropeDim % 2 !== 0)) throw new RangeError(`headMatmul: ropeDim ${r.ropeDim} must be even`);
  const m = a.merge;
  if (m) {
    if (r) throw new RangeError('headMatmul: the rope and merge forms exclude each other');
    if (!Number.isInteger(m.numSplits) || m.numSplits < 1 || m.numSplits > MAX_DECODE_SPLITS) {
      throw new RangeError(`headMatmul: numSplits ${m.numSplits} outside [1, ${MAX_DECODE_SPLITS}]`);
    }
    if (a.xOffset !== undefined || a.xRowStride !== undefined || a.xHeadStride !== undefined) {
      throw new RangeError('headMatmul: merged partials are dense: no x strides or offset');
    }
  }
  const mma = runsMma(a, wOffset, wHead, wRow);
  const shape: HeadMatmulShapeName = a.batch === 1 ? 'row1' : a.batch <= HEAD_MATMUL_ROW_MAX_BATCH ? 'row' : 'block';
  const rows = mma ? mmaRows(a.batch, a.K) : SHAPES[shape].BB;
  const nBlocks = mma ? Math.ceil(a.N / MMA_BN) : Math.ceil(a.N / (4 * SHAPES[shape].CT));
  const splitRow = m ? m.numSplits * a.K : a.K;
  const ap = a.append;
  if (ap) {
    if (!r) throw new RangeError('headMatmul: the KV append runs beside the rope form only');
    if (mma || shape === 'block') throw new RangeError(`headMatmul: the KV append runs at batches up to ${HEAD_MATMUL_APPEND_MAX_BATCH} only (batch ${a.batch})`);
    if (ap.rows > a.batch) throw new RangeError(`headMatmul: ${ap.rows} rows to append beyond the batch's ${a.batch}`);
    if (ap.positions !== r.positions || (ap.finish && (ap.finish.invFreq !== r.invFreq || ap.finish.attentionFactor !== r.attentionFactor))) {
      throw new RangeError("headMatmul: the KV append must share the rope's positions, inverse frequencies and attention factor");
    }
  }
  const embed = ap ? kvAppendEmbed(ap) : null;
  const form = { rope: r !== undefined, ...(m ? { merge: true } : {}) };
  const shader = mma
    ? headMatmulMmaShader({ dtype: a.weight.dtype as 'bf16' | 'f16', BM: rows, ...form })
    : headMatmulShader({
      dtype: a.weight.dtype, shape, ...form, ...(embed ? { append: embed.variant } : {}),
      ...(a.subgroupSize !== undefined && headMatmulShuffles(shape, a.subgroupSize) ? { subgroupSize: a.subgroupSize } : {}),
    });
  return {
    shader,
    buffers: embed
      ? shaderBuffers(shader, { ...embed.buffers, x: a.x, w: a.weight.buffer, y: a.y, positions: r!.positions, inv_freq: r!.invFreq })
      : r
        ? ROPED.buffers({ x: a.x, w: a.weight.buffer, y: a.y, positions: r.positions, inv_freq: r.invFreq })
        : m ? MERGED.buffers({ x: a.x, w: a.weight.buffer, y: a.y, lse: m.lse })
          : PLAIN.buffers({ x: a.x, w: a.weight.buffer, y: a.y }),
    uniformValues: {
      ...embed?.uniformValues,
      batch: a.batch, k: a.K, n: a.N,
      x_offset: a.xOffset ?? 0, x_row_stride: a.xRowStride ?? a.heads * splitRow, x_head_stride: a.xHeadStride ?? splitRow,
      w_offset: wOffset, w_head_stride: wHead, w_row_stride: wRow,
      y_offset: a.yOffset ?? 0, y_row_stride: a.yRowStride ?? a.heads * a.N, y_head_stride: a.yHeadStride ?? a.N,
      ...(r ? { rope_block: nBlocks, rope_half: r.ropeDim / 2, rope_in: r.inOffset, rope_out: r.outOffset, attention_factor: r.attentionFactor } : {}),
      ...(m ? { heads: a.heads, num_splits: m.numSplits } : {}),
    },
    workgroups: [nBlocks + (r ? 1 : 0) + (embed ? 1 : 0), a.heads, Math.ceil(a.batch / rows)],
  };
}

export const headMatmulShader = defineKernel('head_matmul', build_headMatmulShader);
export const headMatmulMmaShader = defineKernel('head_matmul_mma', build_headMatmulMmaShader);
