// WGSL twins of fp8.ts (shared/model), bit-exact with PyTorch's float8_e4m3fn / float8_e5m2 (tested on the GPU
// against the fixture tables). Included by name (`//!include fp8`); unused functions cost nothing.
//
// Encoders work on bitcast<u32>(x) with integer ops only, so the result never depends on whether the
// platform flushes f32 subnormals (lavapipe may): see fp8.ts for the algorithm and saturation rules.
// `*_encode` saturates to ±max (what the cache stores); `*_encode_raw` is PyTorch's plain cast.
//
// Decoders: a normal code becomes an f32 by shifting its exponent+mantissa bits into place and adding the
// exponent rebias (one shift, one add); a subnormal code (exponent field 0) is f32(mantissa) * step, whose
// result is a normal f32 (>= 2^-16), so it is exact everywhere too. Two selects pick the case and NaN/inf.
// That is 6-8 integer/float ops per value, vectorized 4 at a time by the unpack4 helpers — cheap next to
// the dot products the attention kernel does with each value. (unpack2x16float would decode E5M2 in fewer
// ops, but whether it keeps f16 subnormals is up to the platform; this path is exact by construction.)

export const fp8Encode = /* wgsl */ `
// ---- fp8-encode (wgsl-pieces/fp8.ts) ----
// rounds |x| bits to nearest even with 'drop' mantissa bits dropped and rebias 'rebias'; a is finite,
// below the overflow threshold; 'sub_shift0' = 24 + rebias - mbits (x / step = m * 2^-(sub_shift0 - e))
fn fp8_round_bits(a: u32, drop: u32, rebias: u32, min_normal: u32, sub_shift0: u32) -> u32 {
  if (a >= min_normal) {
    let r = a + ((1u << (drop - 1u)) - 1u) + ((a >> drop) & 1u);
    return (r >> drop) - (rebias << (23u - drop));
  }
  let e = a >> 23u;
  if (e + 24u < sub_shift0) { return 0u; } // shift > 24 (includes f32 zero and f32 subnormals): rounds to 0
  let shift = sub_shift0 - e;
  let m = (a & 0x7fffffu) | 0x800000u;
  let half = 1u << (shift - 1u);
  let rem = m & ((1u << shift) - 1u);
  var q = m >> shift;
  if (rem > half || (rem == half && (q & 1u) == 1u)) { q += 1u; }
  return q;
}

fn e4m3_encode_bits(b: u32, saturate: bool) -> u32 {
  let sign = (b >> 24u) & 0x80u;
  let a = b & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7fu; }
  if (saturate && a >= 0x43e00000u) { return sign | 0x7eu; }   // >= 448
  if (a >= 0x43f00000u) { return sign | 0x7fu; }               // >= 480: NaN, E4M3 has no inf
  return sign | fp8_round_bits(a, 20u, 120u, 0x3c800000u, 141u);
}

fn e5m2_encode_bits(b: u32, saturate: bool) -> u32 {
  let sign = (b >> 24u) & 0x80u;
  let a = b & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7fu; }
  if (saturate && a >= 0x47600000u) { return sign | 0x7bu; }   // >= 57344
  if (a >= 0x47800000u) { return sign | 0x7cu; }               // >= 65536: inf
  return sign | fp8_round_bits(a, 21u, 112u, 0x38800000u, 134u);
}

fn e4m3_encode(x: f32) -> u32 { return e4m3_encode_bits(bitcast<u32>(x), true); }
fn e4m3_encode_raw(x: f32) -> u32 { return e4m3_encode_bits(bitcast<u32>(x), false); }
fn e5m2_encode(x: f32) -> u32 { return e5m2_encode_bits(bitcast<u32>(x), true); }
fn e5m2_encode_raw(x: f32) -> u32 { return e5m2_encode_bits(bitcast<u32>(x), false); }

// 4 values -> one word, element k in bits 8k..8k+7 (saturating)
fn e4m3_pack4(v: vec4<f32>) -> u32 {
  return e4m3_encode(v.x) | (e4m3_encode(v.y) << 8u) | (e4m3_encode(v.z) << 16u) | (e4m3_encode(v.w) << 24u);
}
fn e5m2_pack4(v: vec4<f32>) -> u32 {
  return e5m2_encode(v.x) | (e5m2_encode(v.y) << 8u) | (e5m2_encode(v.z) << 16u) | (e5m2_encode(v.w) << 24u);
}

`;

export const fp8Decode = /* wgsl */ `
// ---- fp8-decode (wgsl-pieces/fp8.ts) ----
// codes (one per lane, 0..255) -> values
fn e4m3_decode4(c: vec4<u32>) -> vec4<f32> {
  let mag = c & vec4<u32>(0x7fu);
  let normal = (mag << vec4<u32>(20u)) + vec4<u32>(120u << 23u);
  let sub = bitcast<vec4<u32>>(vec4<f32>(mag) * 0.001953125);      // m * 2^-9
  var bits = select(sub, normal, mag >= vec4<u32>(8u));
  bits = select(bits, vec4<u32>(0x7fc00000u), mag == vec4<u32>(0x7fu)); // NaN
  return bitcast<vec4<f32>>(bits | ((c & vec4<u32>(0x80u)) << vec4<u32>(24u)));
}

fn e5m2_decode4(c: vec4<u32>) -> vec4<f32> {
  let mag = c & vec4<u32>(0x7fu);
  let normal = (mag << vec4<u32>(21u)) + vec4<u32>(112u << 23u);
  let sub = bitcast<vec4<u32>>(vec4<f32>(mag) * 0.0000152587890625); // m * 2^-16
  var bits = select(sub, normal, mag >= vec4<u32>(4u));
  // exponent field 31: inf (mantissa 0) or NaN, keeping the mantissa as the f32 payload
  bits = select(bits, vec4<u32>(0x7f800000u) | ((mag & vec4<u32>(3u)) << vec4<u32>(21u)), mag >= vec4<u32>(0x7cu));
  return bitcast<vec4<f32>>(bits | ((c & vec4<u32>(0x80u)) << vec4<u32>(24u)));
}

fn e4m3_decode(c: u32) -> f32 { return e4m3_decode4(vec4<u32>(c)).x; }
fn e5m2_decode(c: u32) -> f32 { return e5m2_decode4(vec4<u32>(c)).x; }

// one packed word (element k in bits 8k..8k+7) -> its 4 values
fn fp8_split4(w: u32) -> vec4<u32> {
  return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}
fn e4m3_unpack4(w: u32) -> vec4<f32> { return e4m3_decode4(fp8_split4(w)); }
fn e5m2_unpack4(w: u32) -> vec4<f32> { return e5m2_decode4(fp8_split4(w)); }
`;
