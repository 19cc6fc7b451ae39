// The sampler's first pass over a row of f32 logits, shared by the sampler (one workgroup a row) and the row-stats
// kernel (many workgroups a row, for batches too small to fill the card): order-preserving u32 keys of sanitized
// logits, and a run's Extremes (largest key, its lowest index, smallest key). The includer declares
// `logits: array<u32>` (f32 bits) and `const WG: u32` (its workgroup size, a power of two).
export const logitExtremes = /* wgsl */ `
// logits are clamped to ±2^126 (so differences stay finite) and NaN reads as -2^126
const LIMIT_BITS: u32 = 0x7e800000u;
const NONE: u32 = 0xffffffffu;

// Sanitized f32 bits b: NaN -> -2^126, |x| >= 2^126 -> ±2^126, -0 -> +0 (so equal logits have equal keys).
// Branch-free: with an early return per case, the compiler kept each load of an unrolled pass behind the
// previous one's branches, so a thread waited on its loads one at a time whatever the unrolling.
fn sanitize(b: u32) -> u32 {
  let a = b & 0x7fffffffu;
  var r = select(b, (b & 0x80000000u) | LIMIT_BITS, a >= LIMIT_BITS);
  r = select(r, LIMIT_BITS | 0x80000000u, a > 0x7f800000u);
  return select(r, 0u, a == 0u);
}

// u32 key with the order of the floats: x < y <=> key(x) < key(y). Sanitized keys are never 0.
fn key_of(b: u32) -> u32 {
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

struct Extremes {
  max_key: u32,
  argmax: u32,  // the lowest index holding max_key
  min_key: u32,
}

const NO_EXTREMES = Extremes(0u, NONE, NONE);

// Either run's extremes with the other's: equal largest keys keep the lower index, whatever the order.
fn extremes_merge(a: Extremes, b: Extremes) -> Extremes {
  var r = a;
  if (b.max_key > a.max_key || (b.max_key == a.max_key && b.argmax < a.argmax)) {
    r.max_key = b.max_key;
    r.argmax = b.argmax;
  }
  r.min_key = min(a.min_key, b.min_key);
  return r;
}

// This invocation's share of logits[base + start, base + end) (end > start): indices start + lid + j·WG. 8 loads
// a thread issued together (raw, before any arithmetic on them), then taken in index order; indices past the end
// read the run's last logit again (same key, same index), so there is no tail loop. One load waited on at a
// time made a batch-1 pass over 102,400 logits 400 trips of one workgroup, ~0.17 ms a step on an H100.
fn scan_extremes(base: u32, start: u32, end: u32, lid: u32) -> Extremes {
  var e = NO_EXTREMES;
  let last = end - 1u;
  for (var c = start + lid; c < end; c += 8u * WG) {
    let i0 = c;
    let i1 = min(c + WG, last);
    let i2 = min(c + 2u * WG, last);
    let i3 = min(c + 3u * WG, last);
    let i4 = min(c + 4u * WG, last);
    let i5 = min(c + 5u * WG, last);
    let i6 = min(c + 6u * WG, last);
    let i7 = min(c + 7u * WG, last);
    let r0 = logits[base + i0];
    let r1 = logits[base + i1];
    let r2 = logits[base + i2];
    let r3 = logits[base + i3];
    let r4 = logits[base + i4];
    let r5 = logits[base + i5];
    let r6 = logits[base + i6];
    let r7 = logits[base + i7];
    let k0 = key_of(sanitize(r0));
    let k1 = key_of(sanitize(r1));
    let k2 = key_of(sanitize(r2));
    let k3 = key_of(sanitize(r3));
    let k4 = key_of(sanitize(r4));
    let k5 = key_of(sanitize(r5));
    let k6 = key_of(sanitize(r6));
    let k7 = key_of(sanitize(r7));
    // indices only grow along a thread's loads, so a strictly larger key is the only one that moves the argmax
    if (k0 > e.max_key) { e.max_key = k0; e.argmax = i0; }
    if (k1 > e.max_key) { e.max_key = k1; e.argmax = i1; }
    if (k2 > e.max_key) { e.max_key = k2; e.argmax = i2; }
    if (k3 > e.max_key) { e.max_key = k3; e.argmax = i3; }
    if (k4 > e.max_key) { e.max_key = k4; e.argmax = i4; }
    if (k5 > e.max_key) { e.max_key = k5; e.argmax = i5; }
    if (k6 > e.max_key) { e.max_key = k6; e.argmax = i6; }
    if (k7 > e.max_key) { e.max_key = k7; e.argmax = i7; }
    e.min_key = min(min(min(e.min_key, k0), min(k1, k2)), min(min(k3, k4), min(min(k5, k6), k7)));
  }
  return e;
}

var<workgroup> extremes_red: array<Extremes, WG>;

// The workgroup's extremes, returned to every invocation (called in uniform control flow); the array is free again
// when it returns.
fn wg_extremes(e: Extremes, lid: u32) -> Extremes {
  extremes_red[lid] = e;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { extremes_red[lid] = extremes_merge(extremes_red[lid], extremes_red[lid + s]); }
    workgroupBarrier();
  }
  let all = extremes_red[0];
  workgroupBarrier();
  return all;
}
`;
