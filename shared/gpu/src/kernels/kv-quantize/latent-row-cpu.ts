// CPU version of the kv-quantize / kv-dequantize kernels, built on fp8.ts: what a page's bytes must be for
// given f32 rows, bit for bit. Tests compare the GPU against it; it also serves tools that build or read
// pages without a GPU.
import { bf16Bits } from '@latentwire/model';
import { decodeE4M3, decodeE5M2, encodeE4M3, encodeE5M2, f32Bits, f32FromBits } from '@latentwire/model';
import { tokenPlace, type KvElementType, type LatentKvLayout } from '@latentwire/protocol';

/** f32(1/448): the scale is amax * this (a multiply, so the GPU and this agree bit for bit). */
export const INV_E4M3_MAX = Math.fround(1 / 448);

/** The per-token scale of a latent section: amax(|c|) / 448 as an f32 multiply; 1 when the row is all zero. */
export function latentScale(c: ArrayLike<number>): number {
  let amax = 0;
  for (let i = 0; i < c.length; i++) amax = Math.max(amax, Math.abs(Math.fround(c[i]!)));
  return amax === 0 ? 1 : Math.fround(amax * INV_E4M3_MAX);
}

/** Packs `values` (divided by `scale`, f32-rounded, for e4m3) into `out` words starting at `word`. */
function packSection(type: KvElementType, values: ArrayLike<number>, scale: number, out: Uint32Array, word: number): void {
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const x = Math.fround(values[i]!);
    switch (type) {
      case 'f32': out[word + i] = f32Bits(x); break;
      case 'bf16': out[word + (i >> 1)] |= bf16Bits(f32Bits(x)) << (16 * (i & 1)); break;
      case 'fp8_e4m3': out[word + (i >> 2)] |= encodeE4M3(Math.fround(x / scale)) << (8 * (i & 3)); break;
      case 'fp8_e5m2': out[word + (i >> 2)] |= encodeE5M2(x) << (8 * (i & 3)); break;
    }
  }
}

function unpackSection(type: KvElementType, words: Uint32Array, word: number, n: number, scale: number, out: Float32Array, at: number): void {
  for (let i = 0; i < n; i++) {
    switch (type) {
      case 'f32': out[at + i] = f32FromBits(words[word + i]!); break;
      case 'bf16': out[at + i] = f32FromBits(((words[word + (i >> 1)]! >>> (16 * (i & 1))) & 0xffff) << 16); break;
      case 'fp8_e4m3': out[at + i] = decodeE4M3((words[word + (i >> 2)]! >>> (8 * (i & 3))) & 0xff) * scale; break;
      case 'fp8_e5m2': out[at + i] = decodeE5M2((words[word + (i >> 2)]! >>> (8 * (i & 3))) & 0xff); break;
    }
  }
}

/**
 * Writes f32 rows (row t = rows[t*stride .. t*stride + r + rope)) as tokens tokenOffset + t of a sequence
 * whose page table is `pageIds`, into `cache` (u32 words, page p at word p * pageBytes / 4).
 */
export function quantizeLatentRowsCpu(
  layout: LatentKvLayout, rows: ArrayLike<number>, count: number, stride: number,
  pageIds: ArrayLike<number>, tokenOffset: number, cache: Uint32Array,
): void {
  const { kvLoraRank: r, ropeDim: rope } = layout;
  const width = r + rope;
  for (let t = 0; t < count; t++) {
    const tok = tokenOffset + t;
    const { pageIndex, slot } = tokenPlace(layout, tok);
    const base = (pageIds[pageIndex]! * layout.pageBytes) / 4;
    const row = base + (slot * layout.rowBytes) / 4;
    const src = Array.from({ length: width }, (_, i) => rows[t * stride + i]!);
    const c = src.slice(0, r);
    const scale = layout.scales.kind === 'none' ? 1 : latentScale(c);
    cache.fill(0, row, row + layout.rowBytes / 4);
    packSection(layout.latentType, c, scale, cache, row);
    packSection(layout.ropeType, src.slice(r), 1, cache, row + layout.latentBytes / 4);
    if (layout.scales.kind !== 'none') cache[base + layout.scalesOffset / 4 + slot] = f32Bits(scale);
  }
}

/** Reads tokens tokenOffset .. tokenOffset + count back to dense f32 rows of r + rope. */
export function dequantizeLatentRowsCpu(
  layout: LatentKvLayout, cache: Uint32Array, pageIds: ArrayLike<number>, tokenOffset: number, count: number,
): Float32Array {
  const { kvLoraRank: r, ropeDim: rope } = layout;
  const out = new Float32Array(count * (r + rope));
  for (let t = 0; t < count; t++) {
    const tok = tokenOffset + t;
    const { pageIndex, slot } = tokenPlace(layout, tok);
    const base = (pageIds[pageIndex]! * layout.pageBytes) / 4;
    const row = base + (slot * layout.rowBytes) / 4;
    const scale = layout.scales.kind === 'none' ? 1 : f32FromBits(cache[base + layout.scalesOffset / 4 + slot]!);
    unpackSection(layout.latentType, cache, row, r, scale, out, t * (r + rope));
    unpackSection(layout.ropeType, cache, row + layout.latentBytes / 4, rope, 1, out, t * (r + rope) + r);
  }
  return out;
}
