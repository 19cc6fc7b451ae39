// Writes f32 latent rows (prefill output, [T, r + rope] per layer) into a paged latent KV cache in the
// layout's dtype (latent-layout.ts): row t becomes token tokenOffset + t of a sequence, i.e. slot
// (tokenOffset + t) % pageSize of page pageIds[(tokenOffset + t) / pageSize], so appending after a partly
// filled page works. One workgroup per row; each thread writes whole words, so rows never race. For
// fp8_e4m3 the workgroup first reduces amax(|c|) — as u32 bit patterns, which order like the floats for
// finite values and need no float compare — then scale = amax * f32(1/448) (1 for an all-zero row).
// Rows must be finite. Only the dtype changes the shader; sizes, offsets and the page size are uniforms.
//
// kvAppend is the same kernel in its batched form (the decode step's new rows, one per sequence, or a
// prompt's rows): row i goes to token positions[i] of the page table starting at pageTable[tableOffsets[i]],
// and the pool may be split over several buffers (page p in pools[p / pagesPerBuffer]).
//
// kvAppend with `finish` also finishes the rows first, in place (the decode step's latent rows straight out of
// kv_a_proj_with_mqa): c = RMSNorm(c)·w and k_pe roped at the row's position, as the rms-norm and rope kernels
// compute them (the same sums in the same order), then appends them: three dispatches of a decode layer in one.
import type { BufferBinding, KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings, numberedBuffers, numberedStorage, shaderBuffers, type StorageDecl } from '../../runtime/bindings.js';
import type { KvDtype } from '@latentwire/protocol';
import { latentKvLayout, type LatentKvLayout } from '@latentwire/protocol';
import { sectionPackWgsl } from './kv-element-wgsl.js';
import { f32Bits } from '@latentwire/model';
import { INV_E4M3_MAX } from './latent-row-cpu.js';
import { layoutUniforms, rowGrid } from './kv-grid.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { sqAddWgsl } from '../../runtime/wgsl-pieces/norm-walks.js';
import { weightLoadWgsl, type GpuTensor, type WeightDtype } from '../weight-dtype.js';

/** Threads of the kernel's workgroup (the KV append's row function also runs in others': kvRowWgsl). */
const WORKGROUP = 64;
const COMMON_UNIFORMS = {
  rows: 'u32', wg_x: 'u32', src_offset: 'u32', src_stride: 'u32', token_offset: 'u32', page_size: 'u32', rank: 'u32',
  rope: 'u32', latent_words: 'u32', rope_words: 'u32', row_words: 'u32', page_words: 'u32', scales_word: 'u32', cache_offset: 'u32',
} as const;
const UNIFORMS = COMMON_UNIFORMS;
const APPEND_UNIFORMS = { ...COMMON_UNIFORMS, pages_per_buffer: 'u32' } as const;
const FINISH_UNIFORMS = { ...APPEND_UNIFORMS, eps: 'f32', attention_factor: 'f32' } as const;
/** Threads of the rms-norm kernel, whose partial sums the finishing prologue reproduces. */
const NORM_LANES = 128;

/** Most pool buffers kvAppend binds (as the decode attention kernel). */
export const KV_APPEND_MAX_POOLS = 4;

/** `finish`: the rows are normed and roped first (kvAppend only): the norm weight's dtype and the row's widths. */
interface Finish { readonly norm: WeightDtype; readonly rank: number; readonly rope: number }
type Addressing = { readonly kind: 'sequence' } | { readonly kind: 'rows'; readonly pools: number; readonly finish?: Finish };

/** One row's quantize-and-write as a WGSL function, with the bindings and uniforms it reads (kvRowWgsl). */
export interface KvRowWgsl {
  readonly storage: readonly StorageDecl[];
  readonly uniforms: typeof UNIFORMS | typeof APPEND_UNIFORMS | typeof FINISH_UNIFORMS;
  /** Declarations and `fn kv_row(row: u32, lid: u32)`, called by all `wg` threads of a workgroup in uniform control flow. */
  readonly wgsl: string;
  readonly label: string;
}

/**
 * Row `row` of src (f32 bits) written into the cache by a workgroup of `wg` threads (a power of two, 64 or more):
 * the kernel's body, also run by other kernels beside their own work (head_matmul's absorbed query).
 */
export function kvRowWgsl(dtype: KvDtype, addressing: Addressing, wg: number): KvRowWgsl {
  if (!Number.isInteger(Math.log2(wg)) || wg < 64) throw new RangeError(`kvRowWgsl: ${wg} threads (a power of two from 64)`);
  const l = latentKvLayout({ kvLoraRank: 1, ropeDim: 1, pageSize: 1, dtype }); // element types only
  const scaled = l.scales.kind !== 'none';
  const { storage, uniforms, helpers, locate, label } = addressingWgsl(addressing);
  const finish = addressing.kind === 'rows' ? addressing.finish : undefined;
  const reduceAmax = `red[lid] = m;
  workgroupBarrier();
  for (var k = ${wg / 2}u; k > 0u; k >>= 1u) {
    if (lid < k) { red[lid] = max(red[lid], red[lid + k]); }
    workgroupBarrier();
  }
  let amax_bits = workgroupUniformLoad(&red[0]);
  let scale = select(bitcast<f32>(amax_bits) * bitcast<f32>(${f32Bits(INV_E4M3_MAX)}u), 1.0, amax_bits == 0u);`;
  // 4 loads of a thread issued together a trip (a load a trip, each waited on, made these loops the kernel's time)
  const amax = !scaled ? 'let scale = 1.0;'
    : finish ? `var m = 0u;
  ${latentSlots(finish, wg).map(({ name }) => `m = max(m, bitcast<u32>(y${name}) & 0x7fffffffu);`).join('\n  ')}
  ${reduceAmax}`
    : `var m = 0u;
  var i = lid;
  for (; i + ${3 * wg}u < u.rank; i += ${4 * wg}u) {
    let a0 = src[s + i];
    let a1 = src[s + i + ${wg}u];
    let a2 = src[s + i + ${2 * wg}u];
    let a3 = src[s + i + ${3 * wg}u];
    m = max(m, max(max(a0 & 0x7fffffffu, a1 & 0x7fffffffu), max(a2 & 0x7fffffffu, a3 & 0x7fffffffu)));
  }
  for (; i < u.rank; i += ${wg}u) { m = max(m, src[s + i] & 0x7fffffffu); }
  ${reduceAmax}`;
  return {
    // src holds f32 rows, read as bits (finished in place when `finish`)
    storage: [['src', 'array<u32>', finish ? 'read_write' : 'read'], ...storage],
    uniforms,
    label: `${label}${finish ? `_finish_${finish.norm}_r${finish.rank}_p${finish.rope}` : ''}_${dtype}`,
    wgsl: /* wgsl */ `${helpers}
//!include fp8, bf16-encode
${finish ? `// the finished row, staged (finishWgsl): the packers read it from workgroup memory
var<workgroup> row_bits: array<u32, ${finish.rank + finish.rope}>;
var<private> row_src: u32;
fn src_bits(s: u32, i: u32, n: u32) -> u32 {
  if (i < n) { return row_bits[s - row_src + i]; }
  return 0u;
}` : `fn src_bits(s: u32, i: u32, n: u32) -> u32 {
  if (i < n) { return src[s + i]; }
  return 0u;
}`}
${sectionPackWgsl(l.latentType, 'pack_latent')}
${sectionPackWgsl(l.ropeType, 'pack_rope')}
var<workgroup> red: array<u32, ${wg}>;
fn kv_row(row: u32, lid: u32) {
  let s = u.src_offset + row * u.src_stride;
  ${finish ? finishLoadsWgsl(finish, wg) : ''}
  ${locate}
  let slot = tok % u.page_size;
  let dst = base + slot * u.row_words;
  ${finish ? finishWgsl(finish, wg) : ''}
  ${amax}
  for (var w = lid; w < u.latent_words; w += ${wg}u) { put(pool, dst + w, pack_latent(s, u.rank, w, scale)); }
  let rope_dst = dst + u.latent_words;
  for (var w = lid; w < u.rope_words; w += ${wg}u) { put(pool, rope_dst + w, pack_rope(s + u.rank, u.rope, w, 1.0)); }
  ${scaled ? 'if (lid == 0u) { put(pool, base + u.scales_word + slot, bitcast<u32>(scale)); }' : ''}
}
`,
  };
}

function build_kvQuantizeShader({ dtype, addressing }: { readonly dtype: KvDtype; readonly addressing: Addressing }): KernelShader {
  const r = kvRowWgsl(dtype, addressing, WORKGROUP);
  const B = bindings(r.storage, r.uniforms);
  return B.shader(`kv_${r.label}`, /* wgsl */ `
${B.wgsl}
${r.wgsl}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * u.wg_x + wg.x;
  if (row >= u.rows) { return; }
  kv_row(row, lid);
}
`);
}

/** The finishing prologue's bindings (after the pools) and its partial-sum scratch. */
const FINISH_STORAGE: StorageDecl[] = [['norm_w', 'array<u32>'], ['inv_freq', 'array<f32>']];
function finishDeclWgsl(normDtype: WeightDtype): string {
  return `${weightLoadWgsl(normDtype, 'norm_w', 'norm_at')}
var<workgroup> nred: array<f32, ${NORM_LANES}>;`;
}

/**
 * A thread's latent values in the finishing prologue: the rms-norm kernel's lane L (of NORM_LANES) adds the squares
 * of c = L, L + 128, … in order, and thread lid keeps lanes lid, lid + wg, … below NORM_LANES (two at 64 threads;
 * at 256 the first 128 threads one each): value (j, k) is c = lid + wg·j + 128·k. `cond`: the WGSL condition
 * where c may fall past the lane count or the rank, else ''; `guard`: `if (cond) `, or ''.
 */
function latentSlots(f: Finish, wg: number): { name: string; j: number; c: string; cond: string; guard: string }[] {
  const lanes = Math.ceil(NORM_LANES / wg), steps = Math.ceil(f.rank / NORM_LANES);
  return Array.from({ length: lanes }, (_, j) => Array.from({ length: steps }, (_, k) => {
    const conds = [
      ...(wg * (j + 1) > NORM_LANES ? [`lid + ${wg * j}u < ${NORM_LANES}u`] : []),
      ...(wg * j + NORM_LANES * k + Math.min(wg, NORM_LANES) > f.rank ? [`lid + ${wg * j + NORM_LANES * k}u < ${f.rank}u`] : []),
    ];
    const cond = conds.join(' && ');
    return { name: `${j}_${k}`, j, c: `lid + ${wg * j + NORM_LANES * k}u`, cond, guard: cond ? `if (${cond}) ` : '' };
  })).flat();
}
/** A thread's rope values c = rank + lid + wg·m. */
function ropeSlots(f: Finish, wg: number): { m: number; guard: string }[] {
  return Array.from({ length: Math.ceil(f.rope / wg) }, (_, m) => ({ m, guard: wg * (m + 1) > f.rope ? `if (lid + ${wg * m}u < ${f.rope}u) ` : '' }));
}

// The finishing prologue's loads: a thread's latent values (x) with their norm weights (g) and its rope values (xr),
// all issued at once, before the page lookups (a loop of one load a trip, each waited on, walked the row five
// times: squares, normed write, amax, packing).
function finishLoadsWgsl(f: Finish, wg: number): string {
  return [
    ...latentSlots(f, wg).flatMap(({ name, c }) => [
      `let x${name} = bitcast<f32>(src[s + min(${c}, ${f.rank - 1}u)]);`,
      `let g${name} = norm_at(min(${c}, ${f.rank - 1}u));`,
    ]),
    ...ropeSlots(f, wg).map(({ m }) => `let xr${m} = src[s + ${f.rank}u + min(lid + ${wg * m}u, ${f.rope - 1}u)];`),
    'row_src = s;',
  ].join('\n  ');
}

// c = RMSNorm(c)·w in place, as rms-norm computes it: each lane's squares in its order, the tree over the lanes in
// the kernel's order, y = x·inv·g. The finished row goes to workgroup memory (row_bits, which the packers read: no
// second pass over memory) and back to src; then k_pe roped there as rope.ts does.
function finishWgsl(f: Finish, wg: number): string {
  const lat = latentSlots(f, wg);
  const lanes = Math.ceil(NORM_LANES / wg);
  // a value past the lanes or the rank adds 0² (fma(0, 0, p) = p) instead of sitting in a branch: guarded and
  // written p += x * x, the H100's rows came out 1 ulp off rms-norm's (the square and the add rounded apart, by
  // all signs), which the fma fixed
  const laneSums = Array.from({ length: lanes }, (_, j) => `var p${j} = 0.0;
  ${lat.filter((v) => v.j === j).map(({ name, cond }) => `p${j} = ${sqAddWgsl(`p${j}`, cond ? `select(0.0, x${name}, ${cond})` : `x${name}`)};`).join('\n  ')}
  ${wg * (j + 1) > NORM_LANES ? `if (lid + ${wg * j}u < ${NORM_LANES}u) ` : ''}{ nred[lid + ${wg * j}u] = p${j}; }`);
  return `${laneSums.join('\n  ')}
  workgroupBarrier();
  for (var k = ${NORM_LANES / 2}u; k > 0u; k >>= 1u) {
    if (lid < k) { nred[lid] += nred[lid + k]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(nred[0] / f32(u.rank) + u.eps);
  ${lat.map(({ name, c, guard }) => `var y${name} = 0.0;
  ${guard}{
    y${name} = x${name} * inv * g${name};
    row_bits[${c}] = bitcast<u32>(y${name});
    src[s + ${c}] = bitcast<u32>(y${name});
  }`).join('\n  ')}
  ${ropeSlots(f, wg).map(({ m, guard }) => `${guard}{ row_bits[${f.rank}u + lid + ${wg * m}u] = xr${m}; }`).join('\n  ')}
  workgroupBarrier();
  for (var i = lid; i < ${f.rope / 2}u; i += ${wg}u) {
    let angle = f32(tok) * inv_freq[i];
    let rc = cos(angle) * u.attention_factor;
    let rs = sin(angle) * u.attention_factor;
    let at = ${f.rank}u + 2u * i;
    let re = bitcast<f32>(row_bits[at]);
    let im = bitcast<f32>(row_bits[at + 1u]);
    row_bits[at] = bitcast<u32>(re * rc - im * rs);
    row_bits[at + 1u] = bitcast<u32>(re * rs + im * rc);
    src[s + at] = row_bits[at];
    src[s + at + 1u] = row_bits[at + 1u];
  }
  workgroupBarrier();`;
}

interface AddressingWgsl {
  /** Storage after src, and the uniforms. */
  readonly storage: readonly StorageDecl[];
  readonly uniforms: typeof UNIFORMS | typeof APPEND_UNIFORMS | typeof FINISH_UNIFORMS;
  /** put() and the finishing prologue's declarations. */
  readonly helpers: string;
  readonly locate: string;
  readonly label: string;
}

/** Bindings after src, the page lookup and the store, per addressing mode. */
function addressingWgsl(a: Addressing): AddressingWgsl {
  if (a.kind === 'sequence') {
    return {
      label: 'quantize',
      storage: [['page_ids', 'array<u32>'], ['cache', 'array<u32>', 'read_write']],
      uniforms: UNIFORMS,
      helpers: `fn put(pool: u32, i: u32, v: u32) { cache[i] = v; }`,
      locate: `let tok = u.token_offset + row;
  let pool = 0u;
  let base = u.cache_offset + page_ids[tok / u.page_size] * u.page_words;`,
    };
  }
  const n = a.pools;
  if (!Number.isInteger(n) || n < 1 || n > KV_APPEND_MAX_POOLS) throw new RangeError(`kvAppend: ${n} pool buffers (1..${KV_APPEND_MAX_POOLS})`);
  const cases = Array.from({ length: n - 1 }, (_, k) => `    case ${k}u: { pool${k}[i] = v; }`);
  return {
    label: `append_pools${n}`,
    storage: [['positions', 'array<u32>'], ['table_offsets', 'array<u32>'], ['page_table', 'array<u32>'], ...numberedStorage('pool', n, 'array<u32>', 'read_write'), ...(a.finish ? FINISH_STORAGE : [])],
    uniforms: a.finish ? FINISH_UNIFORMS : APPEND_UNIFORMS,
    helpers: `${a.finish ? finishDeclWgsl(a.finish.norm) : ''}
fn put(pool: u32, i: u32, v: u32) {
  switch pool {
${cases.join('\n')}
    default: { pool${n - 1}[i] = v; }
  }
}`,
    locate: `let tok = positions[row];
  let page = page_table[table_offsets[row] + tok / u.page_size];
  let pool = page / u.pages_per_buffer;
  let base = (page - pool * u.pages_per_buffer) * u.page_words;`,
  };
}

export interface KvQuantizeArgs {
  readonly layout: LatentKvLayout;
  /** f32 rows; row t starts at element srcOffset + t * srcStride. */
  readonly src: GPUBuffer | BufferBinding;
  readonly rows: number;
  readonly srcOffset?: number;
  /** Elements between rows (default r + rope). */
  readonly srcStride?: number;
  /** The sequence's page table (u32 page ids, covering tokens 0 .. tokenOffset + rows). */
  readonly pageIds: GPUBuffer | BufferBinding;
  /** Token index of the first row within the sequence (default 0). */
  readonly tokenOffset?: number;
  /** The page pool: page p at byte cacheByteOffset + p * layout.pageBytes. */
  readonly cache: GPUBuffer | BufferBinding;
  readonly cacheByteOffset?: number;
}

export function kvQuantize(a: KvQuantizeArgs): KernelProgram {
  const l = a.layout;
  const width = l.kvLoraRank + l.ropeDim;
  const srcStride = a.srcStride ?? width;
  if (srcStride < width) throw new RangeError(`kvQuantize: srcStride ${srcStride} < row width ${width}`);
  const grid = rowGrid(a.rows, 'kvQuantize');
  const shader = kvQuantizeShader({ dtype: l.dtype, addressing: { kind: 'sequence' } });
  return {
    shader,
    buffers: shaderBuffers(shader, { src: a.src, page_ids: a.pageIds, cache: a.cache }),
    uniformValues: {
      rows: a.rows, wg_x: grid.wgX, src_offset: a.srcOffset ?? 0, src_stride: srcStride,
      ...layoutUniforms(l, a.tokenOffset ?? 0, a.cacheByteOffset ?? 0, 'kvQuantize'),
    },
    workgroups: grid.workgroups,
  };
}

type Binding = GPUBuffer | BufferBinding;

export interface KvAppendArgs {
  readonly layout: LatentKvLayout;
  /** f32 rows; row i starts at element srcOffset + i * srcStride. */
  readonly src: Binding;
  readonly rows: number;
  readonly srcOffset?: number;
  readonly srcStride?: number;
  /** u32 [rows]: the token index each row is written as. */
  readonly positions: Binding;
  /** u32 [rows]: where the page table of row i's sequence starts in pageTable. */
  readonly tableOffsets: Binding;
  /** u32: flattened page tables of global page ids. */
  readonly pageTable: Binding;
  /** The pool's buffers (1..KV_APPEND_MAX_POOLS): page p lives in pools[p / pagesPerBuffer]. */
  readonly pools: readonly Binding[];
  readonly pagesPerBuffer: number;
  /**
   * Finish the rows in place first (they must then be writable): the latent part RMSNorm'd with `normWeight`
   * [kvLoraRank], the rope part roped at the row's position with `invFreq` (f32 [ropeDim / 2]).
   */
  readonly finish?: { readonly normWeight: GpuTensor; readonly eps: number; readonly invFreq: GPUBuffer; readonly attentionFactor: number };
}

/** What kvAppend(a) runs, for a kernel that runs the rows beside its own work (kvAppendEmbed). */
export interface KvAppendEmbed {
  /** The row function's variant (plain data, part of the host kernel's variant): kvAppendRowWgsl builds it. */
  readonly variant: { readonly dtype: KvDtype; readonly pools: number; readonly finish?: Finish };
  readonly buffers: Readonly<Record<string, Binding | undefined>>;
  readonly uniformValues: Readonly<Record<string, number>>;
}

/** kvAppend's arguments checked and resolved into its row function's variant, buffers and uniforms. */
export function kvAppendEmbed(a: KvAppendArgs): KvAppendEmbed {
  const l = a.layout;
  const width = l.kvLoraRank + l.ropeDim;
  const srcStride = a.srcStride ?? width;
  if (srcStride < width) throw new RangeError(`kvAppend: srcStride ${srcStride} < row width ${width}`);
  if (!Number.isInteger(a.pagesPerBuffer) || a.pagesPerBuffer < 1) throw new RangeError(`kvAppend: pagesPerBuffer ${a.pagesPerBuffer}`);
  const grid = rowGrid(a.rows, 'kvAppend');
  const f = a.finish;
  if (f && (f.normWeight.shape.length !== 1 || f.normWeight.shape[0] !== l.kvLoraRank)) {
    throw new RangeError(`kvAppend: norm weight shape [${f.normWeight.shape}] does not match kvLoraRank ${l.kvLoraRank}`);
  }
  if (f && l.ropeDim % 2 !== 0) throw new RangeError(`kvAppend: ropeDim ${l.ropeDim} must be even to rope`);
  // the pool count is checked where the row function is built (addressingWgsl)
  return {
    variant: { dtype: l.dtype, pools: a.pools.length, ...(f ? { finish: { norm: f.normWeight.dtype, rank: l.kvLoraRank, rope: l.ropeDim } } : {}) },
    buffers: {
      src: a.src, positions: a.positions, table_offsets: a.tableOffsets, page_table: a.pageTable,
      ...numberedBuffers('pool', a.pools), norm_w: f?.normWeight.buffer, inv_freq: f?.invFreq,
    },
    uniformValues: {
      rows: a.rows, wg_x: grid.wgX, src_offset: a.srcOffset ?? 0, src_stride: srcStride,
      ...layoutUniforms(l, 0, 0, 'kvAppend'), pages_per_buffer: a.pagesPerBuffer,
      ...(f ? { eps: f.eps, attention_factor: f.attentionFactor } : {}),
    },
  };
}

/** The KV append's row function `kv_row(row, lid)` for workgroups of `wg` threads (see kvRowWgsl). */
export function kvAppendRowWgsl(v: KvAppendEmbed['variant'], wg: number): KvRowWgsl {
  return kvRowWgsl(v.dtype, { kind: 'rows', pools: v.pools, ...(v.finish ? { finish: v.finish } : {}) }, wg);
}

/** Writes rows into a (possibly split) page pool at per-row positions and page tables. */
export function kvAppend(a: KvAppendArgs): KernelProgram {
  const e = kvAppendEmbed(a);
  const shader = kvQuantizeShader({ dtype: e.variant.dtype, addressing: { kind: 'rows', pools: e.variant.pools, ...(e.variant.finish ? { finish: e.variant.finish } : {}) } });
  return {
    shader,
    buffers: shaderBuffers(shader, e.buffers),
    uniformValues: e.uniformValues,
    workgroups: rowGrid(a.rows, 'kvAppend').workgroups,
  };
}

export const kvQuantizeShader = defineKernel('kv_quantize', build_kvQuantizeShader);
