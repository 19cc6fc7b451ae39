// Token sampler, one workgroup of WG threads per row; the semantics are in sample.ts. No sorting: thresholds
// are found by a 16-way search over the order-preserving u32 keys of the logits, one coalesced pass over the
// row per step (counts for top-k, masses for top-p), then the token by inverse CDF in token order.
//
// Bindings, in order (numbered by the launcher):
//   logits: array<u32>, read        f32 bits; row r at logits_offset + r * row_stride, `vocab` values
//   params: array<u32>, read        SAMPLING_PARAMS_WORDS (8) per row, row r at (row_offset + r) * 8:
//                                               temperature (f32 bits), top_k, top_p (f32 bits), seed, counter
//   out:    array<u32>, read_write  token id of row r at row_offset + r
//   stats:  array<Extremes>, read   (the row-stats variant) row r's chunks at r * chunks (sample-row-stats.wgsl)
//   u:      uniforms { rows, vocab, row_stride, logits_offset, row_offset[, chunks] }
// Prelude (sample.ts): sampling_uniform(seed, counter) (sampling-uniform.ts).
//
// Passes over the row: 1 (largest and smallest key; or the row-stats kernel's partial extremes of it) + <= 8 (top-k: 32-bit keys, 4 bits a step) + <= 8 (top-p)
// + 1 (piece sums) and two or three tiny ones (the pieces of the chosen piece). Greedy rows stop after the first.

/*@BINDINGS@*/
//!include logit-extremes

const WG: u32 = /*@WG@*/u;
// bins of one search step: 15 pivots split the key interval into 16
const NB: u32 = 16u;
// weights below exp(-CUT) (relative to the max) are taken as exactly 0, so exp never sees a huge argument
const CUT: f32 = 80.0;

// bins reduced a round: red_f holds RB bins x WG partial sums (8 KiB at 256 threads, 16 KiB at 1024); its first WG
// entries double as the scan
const RB: u32 = select(8u, 4u, WG > 256u);
var<workgroup> red_f: array<f32, RB * WG>;
var<workgroup> tot: array<f32, 16>;      // reduced bins of a search step
var<workgroup> s_lo: u32;
var<workgroup> s_hi: u32;
var<workgroup> s_target: f32;
var<workgroup> s_a: u32;                 // inverse CDF: current piece [s_a, s_a + s_n), residual s_r within it
var<workgroup> s_n: u32;
var<workgroup> s_r: f32;
var<workgroup> s_pick: u32;
var<workgroup> s_last: atomic<u32>;

// pass 1, this invocation's share: thread_extremes(base, row, lid) -> Extremes, over the row or its row-stats
/*@EXTREMES@*/

fn logit_bits(i: u32) -> u32 {
  return sanitize(logits[i]);
}

// the float of key k (key_of's inverse)
fn value_of(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

// Unnormalized probability exp((x - m) / t) in [0, 1]; exactly 0 below exp(-CUT).
fn weight(b: u32, m: f32, t: f32) -> f32 {
  let d = bitcast<f32>(b) - m;
  let lowest = -CUT * t;
  return select(0.0, exp(max(d, lowest) / t), d >= lowest);
}

// Sums each thread's NB bins over the workgroup into `tot` (RB bins a round).
fn reduce_bins(acc: ptr<function, array<f32, 16>>, lid: u32) {
  for (var h = 0u; h < NB / RB; h++) {
    for (var b = 0u; b < RB; b++) { red_f[b * WG + lid] = (*acc)[h * RB + b]; }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s) {
        for (var b = 0u; b < RB; b++) { red_f[b * WG + lid] += red_f[b * WG + lid + s]; }
      }
      workgroupBarrier();
    }
    if (lid == 0u) {
      for (var b = 0u; b < RB; b++) { tot[h * RB + b] = red_f[b * WG]; }
    }
    workgroupBarrier();
  }
}

// Adds logit bits b's count (or weight) to its bin of the search step [lo, lo + NB·step).
fn bin_logit(acc: ptr<function, array<f32, 16>>, b: u32, lo: u32, step: u32, mass: bool, m: f32, t: f32) {
  let k = key_of(b);
  if (k >= lo) {
    var w = 1.0;
    if (mass) { w = weight(b, m, t); }
    let bin = min((k - lo) / step, NB - 1u);
    (*acc)[bin] += w;
  }
}

// The largest key k in [lo0, hi0) with F(k) >= target, where F(k) = count (mass = false) or mass (true) of the
// tokens whose key is >= k. Invariant: F(lo) >= target > F(hi). A negative target0 means p × F(lo0), known after
// the first step. Tokens below lo0 never count, which is how top-p sees only the top-k survivors.
fn search(base: u32, lo0: u32, hi0: u32, mass: bool, target0: f32, p: f32, m: f32, t: f32, lid: u32) -> u32 {
  workgroupBarrier(); // everyone is done with the previous search's s_lo / s_hi
  if (lid == 0u) { s_lo = lo0; s_hi = hi0; s_target = target0; }
  loop {
    let lo = workgroupUniformLoad(&s_lo);
    let hi = workgroupUniformLoad(&s_hi);
    if (hi - lo <= 1u) { return lo; }
    // bin j holds keys in [lo + j·step, lo + (j+1)·step); the last bin also holds keys >= hi, so the suffix sum
    // from bin j is F(lo + j·step)
    let step = (hi - lo + NB - 1u) / NB;
    // zeroed explicitly: on lavapipe the implicit zero-init of a var declared in a loop was not redone each step
    var acc = array<f32, 16>();
    // 4 loads issued together (raw, as pass 1), then binned in index order
    var c = lid;
    for (; c + 3u * WG < u.vocab; c += 4u * WG) {
      let r0 = logits[base + c];
      let r1 = logits[base + c + WG];
      let r2 = logits[base + c + 2u * WG];
      let r3 = logits[base + c + 3u * WG];
      let b0 = sanitize(r0);
      let b1 = sanitize(r1);
      let b2 = sanitize(r2);
      let b3 = sanitize(r3);
      bin_logit(&acc, b0, lo, step, mass, m, t);
      bin_logit(&acc, b1, lo, step, mass, m, t);
      bin_logit(&acc, b2, lo, step, mass, m, t);
      bin_logit(&acc, b3, lo, step, mass, m, t);
    }
    for (; c < u.vocab; c += WG) { bin_logit(&acc, logit_bits(base + c), lo, step, mass, m, t); }
    reduce_bins(&acc, lid);
    if (lid == 0u) {
      var goal = s_target;
      if (goal < 0.0) {
        var total = 0.0;
        for (var j = 0u; j < NB; j++) { total += tot[j]; }
        goal = p * total;
        s_target = goal;
      }
      // the largest pivot below hi whose suffix reaches the target (0 = lo by the invariant)
      var pick = 0u;
      var suffix = 0.0;
      for (var j = NB - 1u; j > 0u; j--) {
        suffix += tot[j];
        if (j * step < hi - lo && suffix >= goal) { pick = j; break; }
      }
      s_lo = lo + pick * step;
      s_hi = min(hi, lo + (pick + 1u) * step);
    }
  }
}

// Inverse CDF in token order over the kept tokens (key >= kappa): the row is split into WG contiguous pieces,
// the piece holding u·total is found by a scan of piece sums, and that piece is split again until one token is
// left. A piece is only ever chosen if its sum is > 0, so the token always has a positive kept weight. The first
// level's pieces are contiguous per thread (not coalesced), the price of token order; later levels are tiny.
fn draw(base: u32, kappa: u32, m: f32, t: f32, uval: f32, lid: u32) -> u32 {
  workgroupBarrier();
  if (lid == 0u) { s_a = 0u; s_n = u.vocab; s_r = -1.0; }
  loop {
    let a = workgroupUniformLoad(&s_a);
    let n = workgroupUniformLoad(&s_n);
    if (n <= 1u) { return a; }
    let r0 = s_r;
    let piece = (n + WG - 1u) / WG;
    let start = a + min(lid * piece, n);
    let end = a + min(lid * piece + piece, n);
    var s = 0.0;
    var i = start;
    for (; i + 3u < end; i += 4u) {
      let r0 = logits[base + i];
      let r1 = logits[base + i + 1u];
      let r2 = logits[base + i + 2u];
      let r3 = logits[base + i + 3u];
      let b0 = sanitize(r0);
      let b1 = sanitize(r1);
      let b2 = sanitize(r2);
      let b3 = sanitize(r3);
      if (key_of(b0) >= kappa) { s += weight(b0, m, t); }
      if (key_of(b1) >= kappa) { s += weight(b1, m, t); }
      if (key_of(b2) >= kappa) { s += weight(b2, m, t); }
      if (key_of(b3) >= kappa) { s += weight(b3, m, t); }
    }
    for (; i < end; i++) {
      let b = logit_bits(base + i);
      if (key_of(b) >= kappa) { s += weight(b, m, t); }
    }
    red_f[lid] = s;
    if (lid == 0u) { s_pick = NONE; atomicStore(&s_last, 0u); }
    workgroupBarrier();
    // inclusive Hillis-Steele scan: non-decreasing in lid, since rounding is monotone
    for (var off = 1u; off < WG; off <<= 1u) {
      var v = 0.0;
      if (lid >= off) { v = red_f[lid - off]; }
      workgroupBarrier();
      red_f[lid] += v;
      workgroupBarrier();
    }
    let r = select(r0, uval * red_f[WG - 1u], r0 < 0.0);
    let incl = red_f[lid];
    var excl = 0.0;
    if (lid > 0u) { excl = red_f[lid - 1u]; }
    if (excl <= r && incl > r) { s_pick = lid; }
    if (s > 0.0) { atomicMax(&s_last, lid); }
    workgroupBarrier();
    if (lid == 0u) {
      var j = s_pick;
      // r >= every prefix only through rounding: then take the last positive piece, and its last positive token
      var r_next = 3.0e38;
      if (j == NONE) {
        j = atomicLoad(&s_last);
      } else if (j > 0u) {
        r_next = r - red_f[j - 1u];
      } else {
        r_next = r;
      }
      s_a = a + j * piece;
      s_n = min(piece, n - j * piece);
      s_r = r_next;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let base = u.logits_offset + row * u.row_stride;
  let pr = (u.row_offset + row) * 8u;
  let temperature_bits = params[pr];
  let top_k = params[pr + 1u];
  let top_p = bitcast<f32>(params[pr + 2u]);
  let uval = sampling_uniform(params[pr + 3u], params[pr + 4u]);

  // pass 1: largest key (lowest index among equals) and smallest key
  let e = wg_extremes(thread_extremes(base, row, lid), lid);
  let max_k = e.max_key;
  let argmax_i = e.argmax;
  let min_key = e.min_key;

  // temperature ±0 (tested on the bits: a flushed subnormal is not greedy) -> argmax
  if ((temperature_bits & 0x7fffffffu) == 0u) {
    if (lid == 0u) { out[u.row_offset + row] = argmax_i; }
    return;
  }
  let t = clamp(bitcast<f32>(temperature_bits), 1e-30, 1e30);
  let m = value_of(max_k);

  var kappa = min_key;
  if (top_k > 0u && top_k < u.vocab) {
    kappa = search(base, min_key, max_k + 1u, false, f32(top_k), 1.0, m, t, lid);
  }
  if (top_p < 1.0) {
    kappa = search(base, kappa, max_k + 1u, true, -1.0, top_p, m, t, lid);
  }
  let token = draw(base, kappa, m, t, uval, lid);
  if (lid == 0u) { out[u.row_offset + row] = token; }
}
