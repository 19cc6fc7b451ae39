// Grouped, weight-absorbed MLA decode attention over the paged latent KV cache, with split-KV and an exact
// log-sum-exp merge (SGLang's grouped decode_attention_fwd / FlashMLA). See the .wgsl files for the kernels.
//
// Inputs of one layer's decode step for `batch` sequences:
//   q            [batch, heads, r + rope] f32: q_lat = W_UKᵀ·q_nope (r values) ‖ roped q_pe (rope values) per head
//   seqLens      u32 [batch]: tokens in each sequence's cache (its context length, the new token included)
//   pageTable    u32: ONE flattened table; the pages of sequence b are pageTable[pageTableOffsets[b] + i],
//                i = 0 .. ceil(seqLens[b] / pageSize) - 1 (token t lives in page entry t / pageSize, slot
//                t % pageSize). Offsets need not be increasing or dense; a caller with a fixed max pages per
//                sequence passes offsets b·maxPages.
//   pageTableOffsets u32 [batch]
//   pools        the layer's page pool, in `poolBindings` GPU buffers (or bindings) of `pagesPerBuffer` pages
//                each, global page id p → buffer ⌊p / pagesPerBuffer⌋, page p mod pagesPerBuffer within it
//                (decode-node/src/scheduler/page-location.ts). Pages use latent-layout.ts's byte layout, so the
//                kernel reads what kv-quantize writes.
//   out          [batch, heads, r] f32: ō = Σ_t softmax_t(score)·c_t (the latent output, before W_UV and o_proj)
//
// Compile-time (one pipeline each): r, rope, cache dtype, page size, head group G, tile BT, threads, pool
// bindings. Per-dispatch (uniforms and buffers, so all batches share the pipeline): batch, heads, lengths,
// page tables, number of splits, scale.
import type { BufferBinding, KernelProgram, KernelShader } from '@latentwire/gpu';
import { bindings, fillWgsl, loadWgsl, shaderBuffers } from '@latentwire/gpu';
import { latentKvLayout, type KvDtype, type KvElementType, type LatentKvLayout } from '@latentwire/protocol';
import { defineKernel } from '@latentwire/gpu';
import { chunkWords, fetchChunkWgsl, poolWordsWgsl } from './page-words-wgsl.js';
import { splitBuffers, splitStorage } from './split-bindings.js';
import {
  groupedDecodeMmaShader, groupedDecodeMmaWorkgroupBytes, mmaUnsupportedReason, MMA, type MatrixCapabilities, type MmaShape,
} from './grouped-decode-attention-mma.js';

const ATTN_WGSL = loadWgsl(new URL('./grouped-decode-attention.wgsl', import.meta.url));
const MERGE_WGSL = loadWgsl(new URL('./grouped-decode-merge.wgsl', import.meta.url));

const ATTN_UNIFORMS = { heads: 'u32', num_splits: 'u32', pages_per_buffer: 'u32', scale_log2e: 'f32' } as const;
const MERGE_BINDINGS = bindings(
  [['o_part', 'array<vec4<f32>>'], ['lse', 'array<f32>'], ['out', 'array<vec4<f32>>', 'read_write']],
  { heads: 'u32', num_splits: 'u32' },
);

/** Most pool buffers one dispatch can bind (each is a storage binding; 6 + this many storage bindings in all). */
export const MAX_POOL_BINDINGS = 4;

/** Everything that changes the compiled kernel. */
export interface GroupedDecodeVariant {
  /** kv_lora_rank r (multiple of 4). */
  readonly kvLoraRank: number;
  /** qk_rope_head_dim (multiple of 4). */
  readonly ropeDim: number;
  readonly dtype: KvDtype;
  readonly pageSize: number;
  /** DECODE_HEAD_GROUP: heads per workgroup; need not divide the head count (the last group is partial). */
  readonly headGroup: number;
  /** Tokens per tile staged in workgroup memory (a power of two). */
  readonly tileTokens: number;
  /** Threads per workgroup (default 128: at r = 512 each thread owns 4 of the latent output dims for all G heads;
   *  with more threads than r/4, phase B splits the heads into slices of GPH, e.g. 256 threads: 4 heads each). */
  readonly workgroupSize?: number;
  /** GPU buffers the pool is split into (1..MAX_POOL_BINDINGS; default 1). */
  readonly poolBindings?: number;
  /** 'f32' (default): the portable FMA kernel; 'subgroup-matrix': grouped-decode-attention-mma.ts (tileTokens 32
   *  or 16, workgroupSize 256, headGroup ≤ 32; needs the adapter's subgroup matrices, see mmaUnsupportedReason). */
  readonly engine?: GroupedDecodeEngine;
}

export type GroupedDecodeEngine = 'f32' | 'subgroup-matrix';

const mmaShape = (v: GroupedDecodeVariant): MmaShape => ({
  kvLoraRank: v.kvLoraRank, ropeDim: v.ropeDim, dtype: v.dtype, pageSize: v.pageSize, headGroup: v.headGroup,
  poolBindings: v.poolBindings ?? 1, tileTokens: v.tileTokens,
});

function checkMmaVariant(v: GroupedDecodeVariant): void {
  if (!(MMA.tileTokenChoices as readonly number[]).includes(v.tileTokens) || (v.workgroupSize ?? MMA.workgroupSize) !== MMA.workgroupSize) {
    throw new RangeError(`groupedDecodeAttention (subgroup-matrix): tileTokens must be one of ${MMA.tileTokenChoices.join(', ')} and workgroupSize ${MMA.workgroupSize} (variant ${JSON.stringify(v)})`);
  }
  const pools = v.poolBindings ?? 1;
  if (!Number.isInteger(pools) || pools < 1 || pools > MAX_POOL_BINDINGS) {
    throw new RangeError(`groupedDecodeAttention: poolBindings must be 1..${MAX_POOL_BINDINGS}`);
  }
}

export type DecodeWorkgroupLimits = Pick<
  GPUSupportedLimits,
  'maxComputeWorkgroupStorageSize' | 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX'
>;

const DEFAULT_WG = 128;

interface Derived {
  readonly R4: number; readonly P4: number; readonly K4: number; readonly KSTR: number;
  readonly G: number; readonly GP: number; readonly GP4: number; readonly BT: number; readonly WG: number;
  readonly AH: number; readonly AT: number; readonly NTT: number; readonly TILES: number; readonly KS: number;
  readonly HS: number; readonly GPH: number; readonly NITEMS: number; readonly NCH: number; readonly pools: number;
}

const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

function derive(v: GroupedDecodeVariant): Derived {
  const fail = (msg: string): never => {
    throw new RangeError(`groupedDecodeAttention: ${msg} (variant ${JSON.stringify(v)})`);
  };
  const WG = v.workgroupSize ?? DEFAULT_WG;
  const pools = v.poolBindings ?? 1;
  if (!Number.isInteger(v.kvLoraRank) || v.kvLoraRank < 4 || v.kvLoraRank % 4 !== 0) fail('kvLoraRank must be a positive multiple of 4');
  if (!Number.isInteger(v.ropeDim) || v.ropeDim < 0 || v.ropeDim % 4 !== 0) fail('ropeDim must be a multiple of 4');
  if (!Number.isInteger(v.headGroup) || v.headGroup < 1) fail('headGroup must be a positive integer');
  if (!isPow2(v.tileTokens)) fail('tileTokens must be a power of two');
  if (!isPow2(WG) || WG < 4) fail('workgroupSize must be a power of two ≥ 4');
  if (!Number.isInteger(pools) || pools < 1 || pools > MAX_POOL_BINDINGS) fail(`poolBindings must be 1..${MAX_POOL_BINDINGS}`);
  const R4 = v.kvLoraRank / 4;
  const P4 = v.ropeDim / 4;
  const K4 = R4 + P4;
  const G = v.headGroup;
  const GP = Math.ceil(G / 4) * 4;
  const BT = v.tileTokens;
  const AH = 2;
  const AT = Math.min(4, BT);
  const NTT = BT / AT;
  const TILES = (GP / AH) * NTT;
  if (TILES > WG) fail(`the ${TILES} score tiles need more than ${WG} threads`);
  // phase B: items (vec4 column c, head slice hh of GPH heads); HS slices when the threads outnumber the columns
  let HS = 1;
  for (let h = 1; h <= GP / 4; h++) if ((GP / 4) % h === 0 && R4 * h <= WG) HS = h;
  return {
    R4, P4, K4, KSTR: K4 % 2 === 0 ? K4 + 1 : K4, G, GP, GP4: GP / 4, BT, WG, AH, AT, NTT, TILES,
    KS: Math.floor(WG / TILES), HS, GPH: GP / HS, NITEMS: Math.ceil((R4 * HS) / WG), NCH: Math.ceil((BT * K4) / WG), pools,
  };
}

/** Workgroup memory one workgroup of this variant uses, in bytes. */
export function groupedDecodeWorkgroupBytes(v: GroupedDecodeVariant): number {
  if (v.engine === 'subgroup-matrix') {
    checkMmaVariant(v);
    return groupedDecodeMmaWorkgroupBytes(mmaShape(v));
  }
  const d = derive(v);
  return 16 * (d.GP * d.KSTR + d.BT * d.KSTR + d.BT * d.GP4 + d.GP4) + 4 * d.KS * d.BT * d.GP;
}

/**
 * Picks the head group, threads and tile for a device: the head group defaults to min(heads, 8) (at r = 512
 * the q of 8 heads is 18 KiB of workgroup memory); the threads, unless given, are 256 or 128, whichever fits
 * the larger tile (256 when both do: on an H100 it runs the kernel 1.2-1.5x faster at 16 and 128 heads,
 * bench/decode-attention); the tile is the largest power of two <= maxTileTokens (default 8) whose workgroup
 * fits the device. Throws if not even one token fits.
 *
 * With `matrix` (the adapter's capabilities) the subgroup-matrix variant is chosen when the device can run it
 * (mmaUnsupportedReason) and the dims fit it (r a multiple of 64, rope of 16): head group min(heads, 32) (above 16 two row tiles share each staged cache tile; H100: 128 heads 1.5x faster than groups of 16), 32-token
 * tiles, 256 threads. `engine` forces one ('subgroup-matrix' throws where it cannot run; 'f32' keeps the portable).
 */
export function groupedDecodePlan(p: {
  readonly kvLoraRank: number; readonly ropeDim: number; readonly dtype: KvDtype; readonly pageSize: number;
  readonly heads: number; readonly limits: DecodeWorkgroupLimits;
  readonly headGroup?: number; readonly maxTileTokens?: number; readonly workgroupSize?: number; readonly poolBindings?: number;
  readonly matrix?: MatrixCapabilities; readonly engine?: GroupedDecodeEngine;
}): GroupedDecodeVariant {
  if (p.engine !== 'f32' && (p.engine === 'subgroup-matrix' || p.matrix)) {
    const why = mmaUnsupportedReason(p.matrix);
    const fits = p.kvLoraRank % 64 === 0 && p.ropeDim > 0 && p.ropeDim % 16 === 0;
    if (why === null && fits) {
      const v: GroupedDecodeVariant = {
        kvLoraRank: p.kvLoraRank, ropeDim: p.ropeDim, dtype: p.dtype, pageSize: p.pageSize,
        headGroup: Math.min(p.headGroup ?? Math.min(p.heads, MMA.maxHeadGroup), MMA.maxHeadGroup), tileTokens: MMA.tileTokens,
        workgroupSize: MMA.workgroupSize, poolBindings: p.poolBindings ?? 1, engine: 'subgroup-matrix',
      };
      if (groupedDecodeWorkgroupBytes(v) <= p.limits.maxComputeWorkgroupStorageSize) return v;
      if (p.engine === 'subgroup-matrix') throw new RangeError('groupedDecodePlan: the subgroup-matrix tile exceeds workgroup memory');
    } else if (p.engine === 'subgroup-matrix') {
      throw new RangeError(`groupedDecodePlan: subgroup-matrix variant unavailable: ${why ?? 'r must be a multiple of 64 and rope of 16'}`);
    }
  }
  const headGroup = p.headGroup ?? Math.min(p.heads, 8);
  const fitsDevice = (wg: number) => wg <= p.limits.maxComputeInvocationsPerWorkgroup && wg <= p.limits.maxComputeWorkgroupSizeX;
  if (p.workgroupSize !== undefined && !fitsDevice(p.workgroupSize)) {
    throw new RangeError(`groupedDecodePlan: ${p.workgroupSize} threads exceed the device's workgroup limits`);
  }
  const candidates = p.workgroupSize !== undefined ? [p.workgroupSize] : [256, DEFAULT_WG].filter(fitsDevice);
  let best: GroupedDecodeVariant | undefined;
  for (const wg of candidates) {
    for (let bt = p.maxTileTokens ?? 8; bt >= 1; bt >>= 1) {
      const v: GroupedDecodeVariant = {
        kvLoraRank: p.kvLoraRank, ropeDim: p.ropeDim, dtype: p.dtype, pageSize: p.pageSize,
        headGroup, tileTokens: bt, workgroupSize: wg, poolBindings: p.poolBindings ?? 1,
      };
      let fits = false;
      try {
        fits = groupedDecodeWorkgroupBytes(v) <= p.limits.maxComputeWorkgroupStorageSize;
      } catch {
        // too many score tiles for the threads at this tile size: try a smaller tile
      }
      if (fits) {
        if (!best || bt > best.tileTokens) best = v;
        break;
      }
    }
  }
  if (best) return best;
  throw new RangeError(
    `groupedDecodePlan: head group ${headGroup} at r=${p.kvLoraRank}+${p.ropeDim} does not fit ` +
      `${p.limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory; use a smaller head group`,
  );
}

/**
 * Most KV splits a decode step uses (DECODE_KV_SPLITS's bound, the split policy's, the LSE scratch's and what
 * W_UV's merge form weighs).
 */
export const MAX_DECODE_SPLITS = 64;

/**
 * Number of KV splits for a batch: enough workgroups to fill the GPU (≥ targetWorkgroups, decodeSplitTarget
 * of the device's workgroup slots measured at start), but no split
 * shorter than minTokensPerSplit (default 64; 256 left V2-Lite at batch 1 with 8 workgroups on a 132-SM GPU)
 * of the longest sequence and at most
 * maxSplits (default MAX_DECODE_SPLITS); with `powerOfTwo`, a power of two that keeps the workgroups within the target. One
 * split when the batch alone fills the GPU. Uniform across the batch (a uniform), so a short sequence next to a long one just gets empty splits,
 * which cost one tiny workgroup each.
 */
export function chooseDecodeSplits(p: {
  readonly batch: number; readonly heads: number; readonly headGroup: number; readonly maxContext: number;
  readonly targetWorkgroups: number; readonly minTokensPerSplit?: number; readonly maxSplits?: number; readonly powerOfTwo?: boolean;
}): number {
  const groups = Math.ceil(p.heads / p.headGroup);
  const base = Math.max(1, p.batch * groups);
  const target = Math.max(1, p.targetWorkgroups);
  // powerOfTwo: the largest power of two whose workgroups stay within the target; else the fewest that reach it
  const want = p.powerOfTwo ? 2 ** Math.floor(Math.log2(Math.max(1, Math.floor(target / base)))) : Math.ceil(target / base);
  const byLength = Math.max(1, Math.floor(p.maxContext / (p.minTokensPerSplit ?? 64)));
  const n = Math.max(1, Math.min(want, byLength, p.maxSplits ?? MAX_DECODE_SPLITS));
  return p.powerOfTwo ? 2 ** Math.floor(Math.log2(n)) : n;
}

/**
 * The workgroups a step of this variant should fill: two waves of the device's full workgroup slots for the
 * portable kernel (a 1024-thread workgroup with all its memory: 1 per SM on an H200, so 264 there, as the H100
 * tuning's 2 × 132 SMs); one wave for the subgroup-matrix kernel, with power-of-two split counts. Its sweep on
 * the H200 (bench/decode-attention, SPLITS=1..64, fp8_e4m3): V2-Lite batch 32 at 1K best at 4 splits (0.051 ms;
 * 16 splits 0.113), batch 64 at 2 (0.081; 3 splits 0.110, 9 splits 0.168), batch 128 at 1, batch 1 at 16K at
 * 48-64; V2 batch 32 at 4K at 1 (0.670; 3 splits 0.754), batch 1 at 16K at 16 (0.120; 64 splits 0.182).
 */
export function decodeSplitTarget(v: GroupedDecodeVariant, workgroupSlots: number): number {
  return (v.engine === 'subgroup-matrix' ? 1 : 2) * workgroupSlots;
}

/** The split policy for a variant on a device with `workgroupSlots` full workgroup slots (chooseDecodeSplits). */
export function decodeSplitsFor(v: GroupedDecodeVariant, p: {
  readonly batch: number; readonly heads: number; readonly maxContext: number; readonly workgroupSlots: number;
}): number {
  return chooseDecodeSplits({
    batch: p.batch, heads: p.heads, headGroup: v.headGroup, maxContext: p.maxContext,
    targetWorkgroups: decodeSplitTarget(v, p.workgroupSlots), powerOfTwo: v.engine === 'subgroup-matrix',
  });
}

/** Scratch the split path needs (callers allocate once for their max batch and max splits). */
export function groupedDecodeScratchBytes(p: {
  readonly batch: number; readonly heads: number; readonly kvLoraRank: number; readonly numSplits: number;
}): { readonly partialBytes: number; readonly lseBytes: number } {
  const rows = p.batch * p.heads * p.numSplits;
  return { partialBytes: p.numSplits > 1 ? rows * p.kvLoraRank * 4 : 0, lseBytes: Math.max(4, rows * 4) };
}

/** WGSL turning a chunk's raw words (as fetched) into its 4 values; e4m3 carries its scale's bits in .y. */
function decodeWgsl(type: KvElementType, raw: string): string {
  switch (type) {
    case 'f32':
      return `bitcast<vec4<f32>>(${raw})`;
    case 'bf16':
      return `bitcast<vec4<f32>>(vec4<u32>(${raw}.x << 16u, ${raw}.x & 0xffff0000u, ${raw}.y << 16u, ${raw}.y & 0xffff0000u))`;
    case 'fp8_e5m2':
      return `e5m2_unpack4(${raw}.x)`;
    case 'fp8_e4m3':
      return `e4m3_unpack4(${raw}.x) * bitcast<f32>(${raw}.y)`;
  }
}

/**
 * The dequantize step, the one place that depends on the cache dtype: fetch_chunk gathers the raw words of one
 * 4-value chunk (the page lookup included), decode_chunk turns them into values. Split in two so a tile's
 * loads are issued one tile ahead and consumed after the compute in between.
 */
function loadChunkWgsl(l: LatentKvLayout, pools: number): string {
  const { cw: poolSelect, locate } = poolWordsWgsl(pools);
  let latent = fetchChunkWgsl(l.latentType, `row + c * ${chunkWords(l.latentType)}u`);
  if (l.scales.kind !== 'none') latent = `vec4<u32>(cw(pool, row + c), cw(pool, base + SCALES_WORD + slot), 0u, 0u)`;
  return `${poolSelect}
// raw words of values 4c..4c+3 of token tok's row (latent c < R4, then rope) of sequence b, page table at pt0
fn fetch_chunk(b: u32, pt0: u32, tok: u32, c: u32) -> vec4<u32> {
  let page = page_table[pt0 + tok / PAGE_SIZE];
  let slot = tok % PAGE_SIZE;
  ${locate}
  let base = index * PAGE_WORDS;
  let row = base + slot * ROW_WORDS;
  if (c < R4) {
    return ${latent};
  }
  return ${fetchChunkWgsl(l.ropeType, `row + LATENT_WORDS + (c - R4) * ${chunkWords(l.ropeType)}u`)};
}
fn decode_chunk(raw: vec4<u32>, c: u32) -> vec4<f32> {
  if (c < R4) {
    return ${decodeWgsl(l.latentType, 'raw')};
  }
  return ${decodeWgsl(l.ropeType, 'raw')};
}`;
}

export function groupedDecodeLayout(v: GroupedDecodeVariant): LatentKvLayout {
  return latentKvLayout({ kvLoraRank: v.kvLoraRank, ropeDim: v.ropeDim, pageSize: v.pageSize, dtype: v.dtype });
}

function variantLabel(v: GroupedDecodeVariant, d: Derived): string {
  return `grouped_decode_attn_${v.dtype}_r${v.kvLoraRank}_p${v.ropeDim}_ps${v.pageSize}_g${d.G}_t${d.BT}_w${d.WG}_pools${d.pools}`;
}

/**
 * The hot loops, unrolled here so every accumulator is a named register whatever the driver's compiler
 * unrolls (arrays indexed by loop counters can land in local memory): ACC_INIT, PHASE_A (split-K scores with
 * FMA chains), PHASE_B (rescale + P·C over the tile) and WRITE (normalized outputs).
 */
function hotLoops(d: Derived): Record<string, string> {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const comp = ['x', 'y', 'z', 'w'];
  const items = range(d.NITEMS);
  const hs = range(d.GPH);
  const GPH4 = d.GPH / 4;
  const accInit = items.flatMap((k) => hs.map((m) => `var acc_${k}_${m} = vec4<f32>(0.0);`)).join('\n  ');
  const chunks = range(d.NCH);
  const rawInit = chunks.map((k) => `var raw_${k} = vec4<u32>(0u);`).join('\n  ');
  // gathers tile `tb`'s chunks into registers (not used until the next STORE, so the loads overlap compute)
  const fetch = (tb: string) =>
    chunks.flatMap((k) => [
      `raw_${k} = vec4<u32>(0u);`,
      `if (lid + ${k * d.WG}u < BT * K4 && ${tb} + (lid + ${k * d.WG}u) / K4 < t_end) {`,
      `  raw_${k} = fetch_chunk(b, pt0, ${tb} + (lid + ${k * d.WG}u) / K4, (lid + ${k * d.WG}u) % K4);`,
      `}`,
    ]);
  const store = chunks.flatMap((k) => [
    `if (lid + ${k * d.WG}u < BT * K4) {`,
    `  let i = lid + ${k * d.WG}u;`,
    `  kvs[(i / K4) * KSTR + i % K4] = decode_chunk(raw_${k}, i % K4);`,
    `}`,
  ]);
  const I = range(d.AH);
  const J = range(d.AT);
  const phaseA = [
    ...I.flatMap((i) => J.map((j) => `var s_${i}_${j} = 0.0;`)),
    `for (var k4 = ks; k4 < K4; k4 += KS) {`,
    ...I.map((i) => `  let qa${i} = qs[(ag0 + ${i}u) * KSTR + k4];`),
    ...J.map((j) => `  let kb${j} = kvs[(at0 + ${j}u) * KSTR + k4];`),
    ...comp.flatMap((c) => I.flatMap((i) => J.map((j) => `  s_${i}_${j} = fma(qa${i}.${c}, kb${j}.${c}, s_${i}_${j});`))),
    `}`,
    ...I.flatMap((i) => J.map((j) => `red[(ks * BT + at0 + ${j}u) * GP + ag0 + ${i}u] = s_${i}_${j};`)),
  ].join('\n      ');
  // item k of this thread: i = lid + k*WG, column c = i % R4, heads hh*GPH .. hh*GPH + GPH - 1 with hh = i / R4
  const phaseB = items.flatMap((k) => [
    `if (lid + ${k * d.WG}u < R4 * HS) {`,
    `  let c = (lid + ${k * d.WG}u) % R4;`,
    `  let pb = (lid + ${k * d.WG}u) / R4 * ${GPH4}u;`,
    ...range(GPH4).map((m4) => `  let al_${m4} = alph[pb + ${m4}u];`),
    ...hs.map((m) => `  acc_${k}_${m} *= al_${m >> 2}.${comp[m & 3]};`),
    ...range(d.BT).flatMap((t) => [
      `  let kv_${t} = kvs[${t * d.KSTR}u + c];`,
      ...range(GPH4).map((m4) => `  let p_${t}_${m4} = ps[${t * d.GP4}u + pb + ${m4}u];`),
      ...hs.map((m) => `  acc_${k}_${m} = fma(vec4<f32>(p_${t}_${m >> 2}.${comp[m & 3]}), kv_${t}, acc_${k}_${m});`),
    ]),
    `}`,
  ]);
  const write = items.flatMap((k) => [
    `if (lid + ${k * d.WG}u < R4 * HS) {`,
    `  let c = (lid + ${k * d.WG}u) % R4;`,
    `  let g0 = (lid + ${k * d.WG}u) / R4 * GPH;`,
    ...hs.map(
      (m) => `  if (g0 + ${m}u < gc) { o_part[((b * u.heads + h0 + g0 + ${m}u) * S + split) * R4 + c] = acc_${k}_${m} * alph[g0 / 4u + ${m >> 2}u].${comp[m & 3]}; }`,
    ),
    `}`,
  ]);
  return {
    ACC_INIT: `${accInit}\n  ${rawInit}`,
    FETCH_FIRST: fetch('t_begin').join('\n  '),
    STORE: store.join('\n    '),
    FETCH_NEXT: fetch('(t0 + BT)').join('\n    '),
    PHASE_A: phaseA,
    PHASE_B: phaseB.join('\n    '),
    WRITE: write.join('\n  '),
  };
}

function build_groupedDecodeAttentionShader(v: GroupedDecodeVariant): KernelShader & { readonly uniforms: typeof ATTN_UNIFORMS } {
  const d = derive(v);
  const l = groupedDecodeLayout(v);
  const consts: Record<string, number> = {
    R4: d.R4, P4: d.P4, K4: d.K4, KSTR: d.KSTR, G: d.G, GP: d.GP, GP4: d.GP4, BT: d.BT, WG: d.WG,
    AH: d.AH, AT: d.AT, NTT: d.NTT, TILES: d.TILES, KS: d.KS, HS: d.HS, GPH: d.GPH, PAGE_SIZE: v.pageSize,
    ROW_WORDS: l.rowBytes / 4, LATENT_WORDS: l.latentBytes / 4, PAGE_WORDS: l.pageBytes / 4, SCALES_WORD: l.scalesOffset / 4,
  };
  const header = Object.entries(consts).map(([k, val]) => `const ${k}: u32 = ${val}u;`).join('\n');
  const B = bindings(splitStorage(d.pools, 'vec4<f32>'), ATTN_UNIFORMS);
  const fp8 = l.latentType.startsWith('fp8') || l.ropeType.startsWith('fp8') ? '//!include fp8-decode' : '';
  return B.shader(variantLabel(v, d), `${header}
${B.wgsl}${fp8}
${loadChunkWgsl(l, d.pools)}
${fillWgsl(ATTN_WGSL, hotLoops(d), 'grouped-decode-attention.wgsl')}`);
}

const MERGE_WG = 64;
/** Workgroups a (sequence, head) row's merge is cut into: one vec4 of the latent a thread. */
function mergeChunks(kvLoraRank: number): number {
  return Math.ceil(kvLoraRank / 4 / MERGE_WG);
}

function build_groupedDecodeMergeShader({ kvLoraRank }: { readonly kvLoraRank: number }): KernelShader & { readonly uniforms: typeof MERGE_BINDINGS.uniforms } {
  if (!Number.isInteger(kvLoraRank) || kvLoraRank < 4 || kvLoraRank % 4 !== 0) {
    throw new RangeError(`groupedDecodeMerge: kvLoraRank ${kvLoraRank} must be a positive multiple of 4`);
  }
  return MERGE_BINDINGS.shader(`grouped_decode_merge_r${kvLoraRank}_w${MERGE_WG}`, `const R4: u32 = ${kvLoraRank / 4}u;
const WG: u32 = ${MERGE_WG}u;
const CHUNKS: u32 = ${mergeChunks(kvLoraRank)}u;
${MERGE_BINDINGS.wgsl}${MERGE_WGSL}`);
}

type Binding = GPUBuffer | BufferBinding;

export interface GroupedDecodeAttentionArgs {
  readonly variant: GroupedDecodeVariant;
  /** [batch, heads, r + rope] f32. */
  readonly q: Binding;
  /** u32 [batch]. */
  readonly seqLens: Binding;
  /** u32 [batch]: where each sequence's row of the flattened page table starts. */
  readonly pageTableOffsets: Binding;
  /** u32: the flattened page table (global page ids). */
  readonly pageTable: Binding;
  /** The layer's pool: variant.poolBindings buffers. */
  readonly pools: readonly Binding[];
  /** Pages per pool buffer (page id p is in pools[⌊p / pagesPerBuffer⌋]); required with several pools. */
  readonly pagesPerBuffer?: number;
  /** [batch, heads, r] f32, written. */
  readonly out: Binding;
  /** Scratch sized by groupedDecodeScratchBytes: `partial` is needed (and used) only when numSplits > 1. */
  readonly lse: Binding;
  readonly partial?: Binding;
  readonly batch: number;
  readonly heads: number;
  /** KV splits (chooseDecodeSplits); 1 writes `out` directly and skips the merge. */
  readonly numSplits: number;
  /** Softmax scale (1/sqrt(qk_nope + qk_rope), times mscale² under YaRN). */
  readonly scale: number;
  /**
   * With numSplits > 1: leave `partial` and `lse` unmerged for the caller to merge while it reads them (the absorbed
   * decode's W_UV matmul: headMatmul's merge form), saving the merge dispatch; `out` is then not written.
   */
  readonly callerMerges?: boolean;
}

function bindingBytes(b: Binding): number | undefined {
  const bb = b as BufferBinding;
  if ('buffer' in b && bb.buffer && typeof bb.buffer.size === 'number') return bb.size ?? bb.buffer.size - (bb.offset ?? 0);
  const size = (b as GPUBuffer).size;
  return typeof size === 'number' ? size : undefined;
}

function checkBytes(name: string, b: Binding, need: number): void {
  const have = bindingBytes(b);
  if (have !== undefined && have < need) throw new RangeError(`groupedDecodeAttention: ${name} holds ${have} bytes, needs ${need}`);
}

/**
 * The programs of one decode attention call: the split kernel, then (numSplits > 1, unless callerMerges) the
 * merge. Grid of the split kernel: (ceil(heads / G), numSplits, batch); of the merge: (heads · latent chunks, batch).
 */
export function groupedDecodeAttention(a: GroupedDecodeAttentionArgs): KernelProgram[] {
  const v = a.variant;
  const mma = v.engine === 'subgroup-matrix';
  if (mma) checkMmaVariant(v);
  const d = mma ? { pools: v.poolBindings ?? 1, G: v.headGroup } : derive(v);
  for (const [k, val] of Object.entries({ batch: a.batch, heads: a.heads, numSplits: a.numSplits })) {
    if (!Number.isInteger(val) || val < (k === 'batch' ? 0 : 1)) throw new RangeError(`groupedDecodeAttention: ${k} = ${val}`);
  }
  if (!Number.isFinite(a.scale)) throw new RangeError(`groupedDecodeAttention: scale = ${a.scale}`);
  if (a.pools.length !== d.pools) {
    throw new RangeError(`groupedDecodeAttention: ${a.pools.length} pool buffers for a variant of ${d.pools}`);
  }
  const ppb = a.pagesPerBuffer ?? 0;
  if (d.pools > 1 && !(Number.isInteger(ppb) && ppb >= 1)) {
    throw new RangeError('groupedDecodeAttention: pagesPerBuffer is required with several pool buffers');
  }
  const r = v.kvLoraRank;
  const rows = a.batch * a.heads;
  checkBytes('q', a.q, rows * (r + v.ropeDim) * 4);
  checkBytes('seqLens', a.seqLens, a.batch * 4);
  checkBytes('pageTableOffsets', a.pageTableOffsets, a.batch * 4);
  checkBytes('out', a.out, rows * r * 4);
  checkBytes('lse', a.lse, rows * a.numSplits * 4);
  const direct = a.numSplits === 1;
  if (!direct) {
    if (!a.partial) throw new RangeError('groupedDecodeAttention: numSplits > 1 needs the partial scratch buffer');
    checkBytes('partial', a.partial, rows * a.numSplits * r * 4);
  }
  const shader = mma ? groupedDecodeMmaShader(mmaShape(v)) : groupedDecodeAttentionShader(v);
  const split: KernelProgram<typeof ATTN_UNIFORMS> = {
    shader,
    buffers: shaderBuffers(shader, splitBuffers({
      q: a.q, seqLens: a.seqLens, pageOffsets: a.pageTableOffsets, pageTable: a.pageTable, pools: a.pools, oPart: direct ? a.out : a.partial!, lse: a.lse,
    })),
    uniformValues: { heads: a.heads, num_splits: a.numSplits, pages_per_buffer: Math.max(1, ppb), scale_log2e: a.scale * Math.LOG2E },
    workgroups: [Math.ceil(a.heads / d.G), a.numSplits, a.batch],
  };
  if (direct || a.callerMerges) return [split];
  return [split, groupedDecodeMerge({ partial: a.partial!, lse: a.lse, out: a.out, batch: a.batch, heads: a.heads, numSplits: a.numSplits, kvLoraRank: r })];
}

export interface GroupedDecodeMergeArgs {
  /** [batch, heads, numSplits, kvLoraRank] and [batch, heads, numSplits] f32: the split kernel's outputs. */
  readonly partial: Binding;
  readonly lse: Binding;
  /** [batch, heads, kvLoraRank] f32, written. */
  readonly out: Binding;
  readonly batch: number;
  readonly heads: number;
  readonly numSplits: number;
  readonly kvLoraRank: number;
}

/** The log-sum-exp merge of the KV splits (grouped-decode-merge.wgsl), grid (heads · chunks of the latent, batch). */
export function groupedDecodeMerge(a: GroupedDecodeMergeArgs): KernelProgram<typeof MERGE_BINDINGS.uniforms> {
  return {
    shader: groupedDecodeMergeShader({ kvLoraRank: a.kvLoraRank }),
    buffers: MERGE_BINDINGS.buffers({ o_part: a.partial, lse: a.lse, out: a.out }),
    uniformValues: { heads: a.heads, num_splits: a.numSplits },
    workgroups: [a.heads * mergeChunks(a.kvLoraRank), a.batch],
  };
}

/**
 * Work of one call for turning a time into rates: FLOPs 2·heads·(r + rope) (scores) + 2·heads·r (output) per
 * token, and the cache bytes read once (each token's row and scale; L2 re-reads by other head groups not counted).
 */
export function groupedDecodeCost(p: {
  readonly variant: Pick<GroupedDecodeVariant, 'kvLoraRank' | 'ropeDim' | 'dtype' | 'pageSize'>;
  readonly heads: number; readonly seqLens: readonly number[];
}): { readonly tokens: number; readonly flops: number; readonly cacheBytes: number } {
  const l = latentKvLayout({ kvLoraRank: p.variant.kvLoraRank, ropeDim: p.variant.ropeDim, pageSize: p.variant.pageSize, dtype: p.variant.dtype });
  const tokens = p.seqLens.reduce((s, n) => s + n, 0);
  const r = p.variant.kvLoraRank;
  return { tokens, flops: tokens * p.heads * (2 * (r + p.variant.ropeDim) + 2 * r), cacheBytes: tokens * l.tokenBytes };
}

export const groupedDecodeAttentionShader = defineKernel('grouped_decode_attn', build_groupedDecodeAttentionShader);

export const groupedDecodeMergeShader = defineKernel('grouped_decode_merge', build_groupedDecodeMergeShader);
