// What kv-quantize and kv-dequantize share: a one-workgroup-per-row grid that stays within WebGPU's
// guaranteed 65535 workgroups per dimension (a long prompt has more rows than that), and the layout's
// sizes in words as uniforms.
import type { LatentKvLayout } from '@latentwire/protocol';

const MAX_DIM = 65535;

export function rowGrid(rows: number, kernel: string): { wgX: number; workgroups: [number, number] } {
  if (!Number.isInteger(rows) || rows < 0) throw new RangeError(`${kernel}: rows ${rows} is not a count`);
  const wgX = Math.max(1, Math.min(rows, MAX_DIM));
  return { wgX, workgroups: [rows === 0 ? 0 : wgX, Math.ceil(rows / MAX_DIM)] };
}

export function layoutUniforms(l: LatentKvLayout, tokenOffset: number, cacheByteOffset: number, kernel: string) {
  if (cacheByteOffset % 4 !== 0) throw new RangeError(`${kernel}: cacheByteOffset ${cacheByteOffset} is not a multiple of 4`);
  return {
    token_offset: tokenOffset, page_size: l.pageSize, rank: l.kvLoraRank, rope: l.ropeDim,
    latent_words: l.latentBytes / 4, rope_words: l.ropeBytes / 4, row_words: l.rowBytes / 4,
    page_words: l.pageBytes / 4, scales_word: l.scalesOffset / 4, cache_offset: cacheByteOffset / 4,
  };
}
