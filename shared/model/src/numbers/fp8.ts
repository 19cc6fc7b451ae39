// FP8 codecs for the latent KV cache, bit-exact with PyTorch's casts (checked against its tables in
// shared/testing/fixtures/fp8.json). E4M3 = float8_e4m3fn: bias 7, 3 mantissa bits, no infinities, max 448,
// 0x7f/0xff NaN. E5M2 = float8_e5m2: bias 15, 2 mantissa bits (the top byte of an f16), max 57344, ±inf.
//
// Encoding works on the f32 bit pattern with integers only, exactly as the WGSL twin in fp8-wgsl.ts does,
// so both agree bit for bit and neither depends on how a platform handles f32 subnormals. f32 inputs that
// are themselves subnormal (< 2^-126) are far below half of either format's smallest step, so they encode
// to ±0 like every other tiny value (what PyTorch does too).
//
// Rounding is to nearest, ties to even. `saturate` (the default, what a KV cache wants) clamps finite and
// infinite values beyond the max to ±max, as a cast after clamp(-max, max) does; NaN stays NaN. Without it
// the encoders are PyTorch's plain casts: E4M3 overflows to NaN (0x7f), E5M2 to ±inf (0x7c).
// SGLang's e5m2 cache uses a plain cast; we saturate E5M2 too so a rare outlier cannot poison attention
// with an infinity (inf·0 = NaN in the score of every query).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 bit pattern of `x` (rounded to f32 first). */
export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

export function f32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

export const E4M3_MAX = 448;
export const E5M2_MAX = 57344;

/** Shared integer encoder. `mBits` mantissa bits, exponent bias `bias`; thresholds are f32 bit patterns. */
interface Fp8Spec {
  readonly mBits: number;
  /** f32 biased exponent minus the format's biased exponent (127 - bias). */
  readonly rebias: number;
  /** f32 bits of the smallest normal, of the max, and of the smallest value a plain cast sends to overflow. */
  readonly minNormal: number;
  readonly maxBits: number;
  readonly overflowBits: number;
  readonly maxCode: number;
  readonly overflowCode: number;
  readonly nanCode: number;
}

const E4M3: Fp8Spec = {
  mBits: 3, rebias: 120, minNormal: 0x3c800000, maxBits: 0x43e00000, overflowBits: 0x43f00000,
  maxCode: 0x7e, overflowCode: 0x7f, nanCode: 0x7f,
};
const E5M2: Fp8Spec = {
  mBits: 2, rebias: 112, minNormal: 0x38800000, maxBits: 0x47600000, overflowBits: 0x47800000,
  maxCode: 0x7b, overflowCode: 0x7c, nanCode: 0x7f,
};

function encodeBits(b: number, fmt: Fp8Spec, saturate: boolean): number {
  const sign = (b >>> 24) & 0x80;
  const a = b & 0x7fffffff;
  if (a > 0x7f800000) return sign | fmt.nanCode;
  if (saturate && a >= fmt.maxBits) return sign | fmt.maxCode;
  if (a >= fmt.overflowBits) return sign | fmt.overflowCode;
  const drop = 23 - fmt.mBits; // mantissa bits that fall off
  if (a >= fmt.minNormal) {
    // add just under half an ulp, plus one if the kept lsb is odd: round half to even; a carry
    // out of the mantissa bumps the exponent, which is the right answer. Between max and overflowBits
    // this lands on max or on the overflow code exactly as round-to-nearest-even would.
    const r = a + ((1 << (drop - 1)) - 1) + ((a >>> drop) & 1);
    return sign | ((r >>> drop) - (fmt.rebias << fmt.mBits));
  }
  // below the smallest normal: the code is round(x / step) with step = 2^(1 - bias - mBits), an integer
  // 0..2^mBits (2^mBits is the smallest normal's code, so rounding up into it is exact too).
  const e = a >>> 23;
  // x = m * 2^(e - 150) with m the mantissa and its implicit bit; step = 2^(rebias - mBits - 126)
  const shift = 24 + fmt.rebias - fmt.mBits - e; // x / step = m * 2^-shift
  if (e === 0 || shift > 24) return sign; // < step/2 (or exactly step/2 when shift = 24 and m = 2^23: even)
  const m = (a & 0x7fffff) | 0x800000;
  const half = 1 << (shift - 1);
  const rem = m & ((1 << shift) - 1);
  let q = m >>> shift;
  if (rem > half || (rem === half && (q & 1) === 1)) q++;
  return sign | q;
}

export function encodeE4M3(x: number, saturate = true): number {
  return encodeBits(f32Bits(x), E4M3, saturate);
}

export function encodeE5M2(x: number, saturate = true): number {
  return encodeBits(f32Bits(x), E5M2, saturate);
}

/** E4M3 code → value (an f32, exactly). */
export function decodeE4M3(code: number): number {
  const mag = code & 0x7f;
  const s = code & 0x80 ? -1 : 1;
  if (mag === 0x7f) return NaN;
  const e = mag >>> 3, m = mag & 7;
  return s * (e === 0 ? m * 2 ** -9 : (8 + m) * 2 ** (e - 10));
}

/** E5M2 code → value (an f32, exactly). */
export function decodeE5M2(code: number): number {
  const mag = code & 0x7f;
  const s = code & 0x80 ? -1 : 1;
  const e = mag >>> 2, m = mag & 3;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (e === 0 ? m * 2 ** -16 : (4 + m) * 2 ** (e - 17));
}

export type Fp8Format = 'e4m3' | 'e5m2';

/** Encodes `values / scale` (scale 1: no division) to codes, one per byte. Division is f32-rounded, as on the GPU. */
export function encodeFp8Array(format: Fp8Format, values: ArrayLike<number>, scale = 1, saturate = true): Uint8Array {
  const enc = format === 'e4m3' ? E4M3 : E5M2;
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    out[i] = encodeBits(f32Bits(scale === 1 ? values[i]! : Math.fround(values[i]!) / Math.fround(scale)), enc, saturate);
  }
  return out;
}

/** Decodes codes and multiplies by `scale` (f32-rounded, as the GPU's multiply). */
export function decodeFp8Array(format: Fp8Format, codes: ArrayLike<number>, scale = 1): Float32Array {
  const dec = format === 'e4m3' ? decodeE4M3 : decodeE5M2;
  const out = new Float32Array(codes.length);
  const s = Math.fround(scale);
  for (let i = 0; i < codes.length; i++) out[i] = dec(codes[i]!) * s;
  return out;
}

/** Packs byte codes 4 per u32, little-endian (element 4j+k in bits 8k..8k+7); the tail word is zero-padded. */
export function packFp8(codes: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(Math.ceil(codes.length / 4));
  for (let i = 0; i < codes.length; i++) out[i >> 2] |= (codes[i]! & 0xff) << (8 * (i & 3));
  return out;
}

export function unpackFp8(words: ArrayLike<number>, count: number): Uint8Array {
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = (words[i >> 2]! >>> (8 * (i & 3))) & 0xff;
  return out;
}
