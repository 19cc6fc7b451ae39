// bfloat16 rounding, as torch casts float32 -> bfloat16: round to nearest, ties to even, on the float32 value.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The 16 stored bits of `v` in bf16 (v is first rounded to float32, as a torch float32 tensor would be). */
export function bf16Bits(v: number): number {
  f32[0] = v;
  const bits = u32[0]!;
  if (Number.isNaN(v)) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToNumber(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** `v` rounded to the nearest bf16 value. */
export function roundToBf16(v: number): number {
  return bf16BitsToNumber(bf16Bits(v));
}
