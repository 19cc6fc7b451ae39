// WGSL for one row section of the latent layout, per stored element type: a packer (f32 source values →
// one cache word) for kv-quantize and an element reader (cache → f32 bits) for kv-dequantize. Values move
// as u32 bit patterns end to end, so f32 and bf16 sections are exact copies/roundings whatever the
// platform does with subnormals and NaN payloads.
import { KV_ELEMENT_BYTES, type KvElementType } from '@latentwire/protocol';

/** Elements per u32 word in a section of `type` (from the layout's element sizes). */
export function elementsPerWord(type: KvElementType): number {
  return 4 / KV_ELEMENT_BYTES[type];
}

/**
 * `fn <name>(s: u32, n: u32, w: u32, scale: f32) -> u32`: word w of a section whose n source values start
 * at src[s] (f32 bits; elements past n pad with code 0). `scale` divides the values (fp8_e4m3 only).
 * Needs `fn src_bits(s: u32, i: u32, n: u32) -> u32` (0 past n) and the pieces bf16-encode and fp8-encode.
 */
export function sectionPackWgsl(type: KvElementType, name: string): string {
  switch (type) {
    case 'f32':
      return `fn ${name}(s: u32, n: u32, w: u32, scale: f32) -> u32 { return src_bits(s, w, n); }\n`;
    case 'bf16':
      return `fn ${name}(s: u32, n: u32, w: u32, scale: f32) -> u32 {
  return bf16_bits(src_bits(s, 2u * w, n)) | (bf16_bits(src_bits(s, 2u * w + 1u, n)) << 16u);
}\n`;
    // the word's 4 values are loaded before any is encoded: the encoders branch on the value, and a load placed
    // after another value's branches waited for it (one load in flight at a time)
    case 'fp8_e5m2':
      return `fn ${name}(s: u32, n: u32, w: u32, scale: f32) -> u32 {
  let b = vec4<u32>(src_bits(s, 4u * w, n), src_bits(s, 4u * w + 1u, n), src_bits(s, 4u * w + 2u, n), src_bits(s, 4u * w + 3u, n));
  return e5m2_encode_bits(b.x, true) | (e5m2_encode_bits(b.y, true) << 8u) | (e5m2_encode_bits(b.z, true) << 16u) | (e5m2_encode_bits(b.w, true) << 24u);
}\n`;
    case 'fp8_e4m3':
      return `fn ${name}(s: u32, n: u32, w: u32, scale: f32) -> u32 {
  let v = bitcast<vec4<f32>>(vec4<u32>(src_bits(s, 4u * w, n), src_bits(s, 4u * w + 1u, n), src_bits(s, 4u * w + 2u, n), src_bits(s, 4u * w + 3u, n))) / scale;
  return e4m3_encode(v.x) | (e4m3_encode(v.y) << 8u) | (e4m3_encode(v.z) << 16u) | (e4m3_encode(v.w) << 24u);
}\n`;
  }
}

/**
 * `fn <name>(w0: u32, i: u32, scale: f32) -> u32`: the f32 bits of element i of a section starting at
 * cache word w0 (fp8_e4m3 values are multiplied by `scale`). Needs the piece fp8-decode and a `cache` array<u32>.
 */
export function sectionLoadWgsl(type: KvElementType, name: string): string {
  switch (type) {
    case 'f32':
      return `fn ${name}(w0: u32, i: u32, scale: f32) -> u32 { return cache[w0 + i]; }\n`;
    case 'bf16':
      return `fn ${name}(w0: u32, i: u32, scale: f32) -> u32 { return (cache[w0 + (i >> 1u)] >> (16u * (i & 1u))) << 16u; }\n`;
    case 'fp8_e5m2':
      return `fn ${name}(w0: u32, i: u32, scale: f32) -> u32 {
  return bitcast<u32>(e5m2_decode((cache[w0 + (i >> 2u)] >> (8u * (i & 3u))) & 0xffu));
}\n`;
    case 'fp8_e4m3':
      return `fn ${name}(w0: u32, i: u32, scale: f32) -> u32 {
  return bitcast<u32>(e4m3_decode((cache[w0 + (i >> 2u)] >> (8u * (i & 3u))) & 0xffu) * scale);
}\n`;
  }
}
