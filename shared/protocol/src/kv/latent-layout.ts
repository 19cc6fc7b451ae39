// The latent KV layout contract between prefill (which writes rows) and decode (which pages and reads
// them): one latent tensor per layer, not K and V (MLA caches c = kv_a_layernorm(latent), kvLoraRank
// values, and k_pe, ropeDim roped values, per token). Like vLLM's MLAAttentionSpec, it is a typed value
// with computed sizes; the handoff carries `version`, and a change of byte layout bumps it.
//
// Byte layout of one page (all offsets 4-byte aligned, little-endian; the cache is an array<u32>):
//   [ row 0 | row 1 | ... | row pageSize-1 ][ scale 0 | ... | scale pageSize-1 ]   (scales: fp8_e4m3 only)
//   row = [ latent section: kvLoraRank values ][ rope section: ropeDim values ], each section padded to 4 bytes
//     f32       latent f32,         rope f32
//     bf16      latent bf16 (2/word, element 2j in the low half), rope bf16
//     fp8_e5m2  latent e5m2 (4/word, element 4j+k in bits 8k..8k+7), rope e5m2; no scale (as SGLang)
//     fp8_e4m3  latent e4m3 of c / scale, rope bf16; scale = f32 per token, amax(|c|) / 448 (amax 0 → 1)
// Slot s of page p starts at byte p*pageBytes + s*rowBytes; its scale at p*pageBytes + scalesOffset + 4s.
// Rows are kept together (scales after them) so a row keeps the alignment its size gives it: 640 bytes
// for DeepSeek's fp8_e4m3, a multiple of 16, where vec4<u32> loads want it.
//
// Why this E4M3 scale layout (measured by `test/fp8.test.ts`, "fp8 - scale layouts": 2000 rows of r=512 +
// rope=64, c ~ N(0,1)·w with w = 1 + N(0,0.1), k_pe ~ N(0,3), q ~ N(0,1); row error = ‖row'−row‖/‖row‖,
// score error = |q·(row'−row)| / RMS(q·row); second pair of columns: 2% of channels w=8, 8 rope dims N(0,10)):
//   layout (bytes/token at 512+64)              | row err      score err    | outliers: row   score
//                                               | mean  max    mean  max    | mean  max   mean  max
//   per-token scale, all 576 in e4m3 (580)      | 2.57% 3.13%  2.09%  8.8%  | 2.42% 3.16% 1.89% 11.1%
//   per-128 block scales, all e4m3 (596)        | 2.53% 3.10%  1.98%  9.7%  | 2.13% 2.83% 1.71% 10.1%
//   per-token scale c, rope bf16 (644)  <- v1   | 1.82% 2.22%  1.44%  6.2%  | 1.63% 2.51% 1.30%  6.6%
//   per-128 scales c, rope bf16 (656, FlashMLA) | 1.77% 2.18%  1.42%  6.7%  | 1.40% 2.05% 1.07%  5.1%
//   e5m2, no scale (576)                        | 5.26% 6.58%  4.02% 16.8%  | 5.23% 7.30% 4.03% 19.5%
//   bf16 (1152)                                 | 0.17% 0.20%  0.13%  0.7%  | 0.16% 0.24% 0.13%  0.6%
// E4M3 is a floating format: its relative error is set by the 3-bit mantissa whatever the scale, which
// only decides where subnormals start (amax/28672) — so finer scale blocks buy little (2-12%). Keeping
// k_pe in bf16, as DeepSeek's FP8 FlashMLA does, cuts the error by ~30% for +11% bytes (the rope values
// are wider-ranged and enter every score directly). One scale per token also lets the attention kernel
// fold it into the score and the softmax weight (q·(s·ĉ) = s·(q·ĉ)) instead of multiplying per element.
import type { KvDtype } from './kv-dtype.js';

export const LATENT_LAYOUT_VERSION = 1 as const;

/** A bad layout spec or a page question outside the layout (a RangeError: sizes and indexes). */
export class KvLayoutError extends RangeError {
  override readonly name = 'KvLayoutError';
}

/** How the values of each row section are stored. */
export type KvElementType = 'f32' | 'bf16' | 'fp8_e4m3' | 'fp8_e5m2';

/** Scales: none, or one f32 per token covering the latent (c) section only (fp8_e4m3). */
export type KvScaleLayout = { readonly kind: 'none' } | { readonly kind: 'per-token-latent'; readonly max: 448 };

export interface LatentKvLayoutSpec {
  readonly kvLoraRank: number;
  readonly ropeDim: number;
  readonly pageSize: number;
  readonly dtype: KvDtype;
}

export interface LatentKvLayout extends LatentKvLayoutSpec {
  readonly version: typeof LATENT_LAYOUT_VERSION;
  readonly latentType: KvElementType;
  readonly ropeType: KvElementType;
  readonly scales: KvScaleLayout;
  /** Bytes of a row's latent section (padded to 4), where its rope section starts. */
  readonly latentBytes: number;
  readonly ropeBytes: number;
  /** latentBytes + ropeBytes: the stride between rows of a page. */
  readonly rowBytes: number;
  /** Bytes per token for its scales (0 or 4). */
  readonly scaleBytes: number;
  /** Cache bytes per token: rowBytes + scaleBytes. */
  readonly tokenBytes: number;
  /** Byte offset of the scales within a page (pageSize * rowBytes). */
  readonly scalesOffset: number;
  readonly pageBytes: number;
}

/** Bytes of one stored value of each element type: the one table (kernels derive words from it). */
export const KV_ELEMENT_BYTES: Readonly<Record<KvElementType, number>> = Object.freeze({ f32: 4, bf16: 2, fp8_e4m3: 1, fp8_e5m2: 1 });
const align4 = (n: number) => Math.ceil(n / 4) * 4;

function positiveInt(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new KvLayoutError(`latent layout: ${name}=${v} must be an integer in 1..${max}`);
}

export function latentKvLayout(spec: LatentKvLayoutSpec): LatentKvLayout {
  positiveInt('kvLoraRank', spec.kvLoraRank, 1 << 16);
  positiveInt('ropeDim', spec.ropeDim, 1 << 16);
  positiveInt('pageSize', spec.pageSize, 1 << 16);
  const e4m3 = spec.dtype === 'fp8_e4m3';
  const latentType: KvElementType = spec.dtype;
  const ropeType: KvElementType = e4m3 ? 'bf16' : spec.dtype;
  const latentBytes = align4(spec.kvLoraRank * KV_ELEMENT_BYTES[latentType]);
  const ropeBytes = align4(spec.ropeDim * KV_ELEMENT_BYTES[ropeType]);
  const rowBytes = latentBytes + ropeBytes;
  const scaleBytes = e4m3 ? 4 : 0;
  const scales: KvScaleLayout = e4m3 ? { kind: 'per-token-latent', max: 448 } : { kind: 'none' };
  return Object.freeze({
    version: LATENT_LAYOUT_VERSION,
    kvLoraRank: spec.kvLoraRank, ropeDim: spec.ropeDim, pageSize: spec.pageSize, dtype: spec.dtype,
    latentType, ropeType,
    scales,
    latentBytes, ropeBytes, rowBytes, scaleBytes,
    tokenBytes: rowBytes + scaleBytes,
    scalesOffset: spec.pageSize * rowBytes,
    pageBytes: spec.pageSize * (rowBytes + scaleBytes),
  });
}

/**
 * Pages needed to hold `tokens` rows: the one definition, asked by the scheduler, the gateway (with a
 * heartbeat's page size), the engine, the prefill and the benches.
 */
export function pagesFor(layout: Pick<LatentKvLayout, 'pageSize'>, tokens: number): number {
  const { pageSize } = layout;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new KvLayoutError(`pageSize must be a positive integer, got ${pageSize}`);
  if (!Number.isInteger(tokens) || tokens < 0) throw new KvLayoutError(`tokens must be a non-negative integer, got ${tokens}`);
  return Math.ceil(tokens / pageSize);
}

/** Where token `token` of a sequence lives: the index in its page list and the slot within that page. */
export function tokenPlace(layout: Pick<LatentKvLayout, 'pageSize'>, token: number): { readonly pageIndex: number; readonly slot: number } {
  return { pageIndex: Math.floor(token / layout.pageSize), slot: token % layout.pageSize };
}

/**
 * One page's part of a run of tokens. A kv-chunk's data (and the prefill's contiguous page bytes, seen
 * from token 0) is, for each page the run touches in order, that part's rows then its scales, so a run of
 * whole pages is exactly those pages' bytes.
 */
export interface LatentPagePiece {
  /** Index in the sequence's page list (page i holds tokens [i·pageSize, (i+1)·pageSize)). */
  readonly pageIndex: number;
  /** First slot of the page written. */
  readonly slot: number;
  readonly tokens: number;
  /** Where the piece's rows start in the run's bytes; its scales (tokens·scaleBytes) follow them. */
  readonly dataOffset: number;
  readonly rowsBytes: number;
  readonly scalesBytes: number;
  /** Where rows and scales go in the page, in bytes from the page's start. */
  readonly pageRowsOffset: number;
  readonly pageScalesOffset: number;
}

/** Bytes of a run of `tokens` tokens in page-piece order (what a kv-chunk's data holds). */
export function runBytes(layout: LatentKvLayout, tokens: number): number {
  return tokens * layout.tokenBytes;
}

/** Tokens [tokenStart, tokenStart + tokenCount) cut at page boundaries, with where each part goes. */
export function pagePieces(layout: LatentKvLayout, tokenStart: number, tokenCount: number): LatentPagePiece[] {
  if (!Number.isInteger(tokenStart) || tokenStart < 0 || !Number.isInteger(tokenCount) || tokenCount < 1) {
    throw new KvLayoutError(`tokens [${tokenStart}, ${tokenStart + tokenCount}) are not a non-empty run`);
  }
  const out: LatentPagePiece[] = [];
  for (let t = tokenStart, dataOffset = 0, end = tokenStart + tokenCount; t < end; ) {
    const { pageIndex, slot } = tokenPlace(layout, t);
    const tokens = Math.min(layout.pageSize - slot, end - t);
    const rowsBytes = tokens * layout.rowBytes, scalesBytes = tokens * layout.scaleBytes;
    out.push({
      pageIndex, slot, tokens, dataOffset, rowsBytes, scalesBytes,
      pageRowsOffset: slot * layout.rowBytes, pageScalesOffset: layout.scalesOffset + slot * layout.scaleBytes,
    });
    t += tokens;
    dataOffset += rowsBytes + scalesBytes;
  }
  return out;
}

/** A short stable key naming everything that fixes the bytes, for handoff checks and logs. */
export function latentLayoutKey(l: LatentKvLayout): string {
  return `latent-v${l.version}/${l.dtype}/r${l.kvLoraRank}+${l.ropeDim}/p${l.pageSize}`;
}

/** Throws unless two layouts (e.g. the prefill's and the decode node's) describe the same bytes. */
export function assertSameLayout(a: LatentKvLayout, b: LatentKvLayout): void {
  if (latentLayoutKey(a) !== latentLayoutKey(b)) {
    throw new KvLayoutError(`latent layout mismatch: ${latentLayoutKey(a)} vs ${latentLayoutKey(b)}`);
  }
}
