// WGSL that reads a latent cache page's raw u32 words, shared by the portable and the subgroup-matrix variants:
// which pool buffer a page lives in (a layer's pool may span several bindings) and the words of a 4-value chunk.
import { KV_ELEMENT_BYTES, type KvElementType } from '@latentwire/protocol';

/** u32 words a chunk of 4 values of `type` takes (4 values × bytes per value / 4 bytes per word). */
export const chunkWords = (type: KvElementType): number => KV_ELEMENT_BYTES[type];

/**
 * `cw`: `fn cw(pool, i)`, word i of pool buffer `pool` (bound as pool0 … pool{n-1});
 * `locate`: statements setting `pool` and `index` (the page's position in that buffer) from `page`.
 */
export function poolWordsWgsl(pools: number): { readonly cw: string; readonly locate: string } {
  const cw =
    pools === 1
      ? `fn cw(pool: u32, i: u32) -> u32 { return pool0[i]; }`
      : `fn cw(pool: u32, i: u32) -> u32 {
  switch pool {
${Array.from({ length: pools - 1 }, (_, k) => `    case ${k}u: { return pool${k}[i]; }`).join('\n')}
    default: { return pool${pools - 1}[i]; }
  }
}`;
  const locate =
    pools === 1
      ? `let pool = 0u;\n  let index = page;`
      : `let pool = page / u.pages_per_buffer;\n  let index = page - pool * u.pages_per_buffer;`;
  return { cw, locate };
}

/** A vec4<u32> of the words of the chunk of `type` starting at word expression `w` (zeros past its words). */
export function fetchChunkWgsl(type: KvElementType, w: string): string {
  const words = Array.from({ length: 4 }, (_, k) => (k < chunkWords(type) ? `cw(pool, ${w} + ${k}u)` : '0u'));
  return `vec4<u32>(${words.join(', ')})`;
}
