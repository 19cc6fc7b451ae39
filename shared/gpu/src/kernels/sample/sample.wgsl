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
//!include logit-extremes, token-draw

const WG: u32 = /*@WG@*/u;
// bins reduced a round: red_f holds RB bins x WG partial sums (8 KiB at 256 threads, 16 KiB at 1024); its first WG
// entries double as the scan
const RB: u32 = select(8u, 4u, WG > 256u);
var<workgroup> red_f: array<f32, RB * WG>;
var<workgroup> tot: array<f32, 16>;      // reduced bins of a search step
var<workgroup> s_lo: u32;
var<workgroup> s_hi: u32;
var<workgroup> s_target: f32;

// pass 1, this invocation's share: thread_extremes(base, row, lid) -> Extremes, over the row or its row-stats
/*@EXTREMES@*/

fn logit_bits(i: u32) -> u32 {
  return sanitize(logits[i]);
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
    (*acc)[search_bin(k, lo, step)] += w;
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
    let step = search_width(lo, hi);
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
      let pick = search_pick(tot, lo, hi, step, goal);
      s_lo = lo + pick * step;
      s_hi = min(hi, lo + (pick + 1u) * step);
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
  let token = draw(base, 0u, u.vocab, -1.0, kappa, m, t, uval, lid);
  if (lid == 0u) { out[u.row_offset + row] = token; }
}
