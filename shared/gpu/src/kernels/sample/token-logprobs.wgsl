// Logprobs of a row's sampled token and its top alternatives: log-softmax of the row's logits (the sampler's
// input, after logit-adjust; no temperature), one workgroup per row. Passes over the row: max, sum of exp,
// then one arg-max pass per alternative (at most MAX_TOP 20), each finding the largest (value, lowest id)
// after the previous one in the order (value descending, id ascending).
//
// Bindings, in order (numbered by the launcher):
//   logits: array<f32>, read        row r at logits_offset + r * row_stride, `vocab` values
//   params: array<u32>, read        logit params; top_logprobs at (row_offset + r) * 8 + 6 (NONE: skip)
//   tokens: array<u32>, read        sampled id of row r at row_offset + r
//   out:    array<u32>, read_write  OUT_WORDS (41) per row at (row_offset + r) * 41: the token's
//                                               logprob (f32 bits), then top (id, logprob f32 bits) pairs
//   u:      uniforms { rows, vocab, row_stride, logits_offset, row_offset }

/*@BINDINGS@*/

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
const MAX_TOP: u32 = 20u;
const OUT_WORDS: u32 = 41u;

//!include wg-reduce
var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;

// As the sampler reads logits: clamped to ±2^126 and NaN as -2^126, so every comparison below is total and
// every logprob finite (an infinite logit would make the log-sum-exp NaN)
const LIMIT: f32 = 8.507059e37;
fn logit(i: u32) -> f32 {
  let x = logits[i];
  return select(-LIMIT, clamp(x, -LIMIT, LIMIT), x == x);
}

// (v, i) comes before (w, j) in (value descending, id ascending) order
fn before(v: f32, i: u32, w: f32, j: u32) -> bool {
  return v > w || (v == w && i < j);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let top = params[(u.row_offset + row) * 8u + 6u];
  if (top == NONE) { return; }
  let base = u.logits_offset + row * u.row_stride;
  let o = (u.row_offset + row) * OUT_WORDS;

  // max
  var m = -3.4e38;
  for (var c = lid; c < u.vocab; c += WG) { m = max(m, logit(base + c)); }
  let mx = wg_max(&red_v, lid, m);
  // log of the sum of exp(x - max)
  var acc = 0.0;
  for (var c = lid; c < u.vocab; c += WG) { acc += exp(logit(base + c) - mx); }
  let lse = mx + log(wg_sum(&red_v, lid, acc));
  if (lid == 0u) {
    let tok = tokens[u.row_offset + row];
    out[o] = bitcast<u32>(select(-3.4e38, logit(base + min(tok, u.vocab - 1u)) - lse, tok < u.vocab));
  }

  // top alternatives, one arg-max pass each
  var pv = 3.4e38;
  var pi = NONE;
  let k = min(top, min(MAX_TOP, u.vocab));
  for (var j = 0u; j < k; j++) {
    var bv = -3.4e38;
    var bi = NONE;
    for (var c = lid; c < u.vocab; c += WG) {
      let x = logit(base + c);
      // after the previous pick, and before the best so far
      let after = j == 0u || before(pv, pi, x, c);
      if (after && (bi == NONE || before(x, c, bv, bi))) { bv = x; bi = c; }
    }
    red_v[lid] = bv;
    red_i[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s) {
        let ov = red_v[lid + s];
        let oi = red_i[lid + s];
        if (oi != NONE && (red_i[lid] == NONE || before(ov, oi, red_v[lid], red_i[lid]))) { red_v[lid] = ov; red_i[lid] = oi; }
      }
      workgroupBarrier();
    }
    pv = red_v[0];
    pi = red_i[0];
    workgroupBarrier();
    if (lid == 0u) {
      out[o + 1u + 2u * j] = pi;
      out[o + 2u + 2u * j] = bitcast<u32>(pv - lse);
    }
  }
}
