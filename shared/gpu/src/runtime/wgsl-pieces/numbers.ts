// 16-bit float formats as kernels meet them in u32 words: bf16 is the top half of an f32, so unpacking is a
// shift or a mask and packing a rounding of the f32 bits; f16 goes through unpack2x16float (no shader-f16).

/** f32 bits → bf16 bits, round to nearest even (NaN → 0x7fc0), as weight-dtype.ts's bf16Bits. */
export const bf16Encode = /* wgsl */ `
fn bf16_bits(b: u32) -> u32 {
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 0x7fc0u; }
  return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}
`;

/** A vec4<u32> of 8 bf16 values (element 2j in word j's low half) → its first / last 4 as f32. */
export const bf16Unpack = /* wgsl */ `
fn bf16_lo4(v: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(v.x << 16u, v.x & 0xffff0000u, v.y << 16u, v.y & 0xffff0000u));
}
fn bf16_hi4(v: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(v.z << 16u, v.z & 0xffff0000u, v.w << 16u, v.w & 0xffff0000u));
}
`;

/** The same for 8 f16 values. */
export const f16Unpack = /* wgsl */ `
fn f16_lo4(v: vec4<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)); }
fn f16_hi4(v: vec4<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w)); }
`;
