// 16-bit float codecs and the packed form weights take on the GPU: two bf16/f16 values per u32, or f32.

export type WeightDtype = 'bf16' | 'f16' | 'f32';

/** Bytes a weight of `elements` values takes in its stored dtype. */
export function weightBytes(dtype: WeightDtype, elements: number): number {
  return dtype === 'f32' ? elements * 4 : elements * 2;
}

/** Converts float values to the packed stored form (for tests and synthetic weights). */
export function packWeights(values: ArrayLike<number>, dtype: WeightDtype): Uint32Array {
  const n = values.length;
  if (dtype === 'f32') {
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = values[i]!;
    return new Uint32Array(f.buffer);
  }
  const out = new Uint32Array(Math.ceil(n / 2));
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    f[0] = values[i]!;
    const half = dtype === 'bf16' ? bf16Bits(u[0]!) : f16Bits(values[i]!);
    out[i >> 1] |= half << (16 * (i & 1));
  }
  return out;
}

/** Round-to-nearest-even truncation of f32 bits to bf16 bits. */
export function bf16Bits(f32bits: number): number {
  if ((f32bits & 0x7f800000) === 0x7f800000 && (f32bits & 0x7fffff) !== 0) return 0x7fc0;
  const lsb = (f32bits >>> 16) & 1;
  return ((f32bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** Round-to-nearest-even f32 -> f16 bits. */
export function f16Bits(x: number): number {
  const f = new Float32Array([x]);
  const b = new Uint32Array(f.buffer)[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
  if (r === 0x400) {
    r = 0;
    e++;
    if (e >= 31) return sign | 0x7c00;
  }
  return sign | (e << 10) | r;
}
