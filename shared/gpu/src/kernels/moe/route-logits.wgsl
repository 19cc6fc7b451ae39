// MoE router logits: logits[t, e] = Σ_h x[t, h] · W_gate[e, h], accumulated in f32 (transformers upcasts both
// to float32 before its F.linear).
//
// Bindings, in order (numbered by the launcher):
//   x:      array<f32>, read        hidden states, row t at t*x_stride + x_offset
//   w:      array<u32>, read        W_gate [E, hidden] in its stored dtype (read via weight_at)
//   logits: array<f32>, read_write  [tokens, E]
//   u:      uniforms { tokens, hidden, x_stride, x_offset }
// Compile-time constants (prelude): E (experts), EPW (experts per workgroup), LANES (threads per expert, a power
// of two, splitting hidden), TOK (tokens per workgroup), and the input's reader: x_value(t, r, h) (token t, the
// workgroup's row r, element h) and its prologue norm_prologue(t0, column, lid) (launcher-written). Workgroup = EPW·LANES threads; grid = (ceil(E/EPW), ceil(tokens/TOK)).
// Each thread walks its expert row with stride LANES (adjacent lanes read adjacent weights), keeping TOK partial
// sums, then the LANES partials are tree-reduced in workgroup memory.
// With the norm (post_attention_layernorm folded in, bindings norm_w and xn, uniform eps), the prologue computes
// the workgroup's TOK rows' 1 / rms as rms-norm does (the rms-rows piece), x_value reads x·inv·w, and the first
// column of workgroups writes those normed rows to xn for the experts: the logits and xn are bit for bit those of
// rms-norm then this kernel without it.

/*@BINDINGS@*/

const WG = EPW * LANES;
var<workgroup> red: array<f32, WG * TOK>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let lane = lid % LANES;
  let e = wg.x * EPW + lid / LANES;
  let t0 = wg.y * TOK;
  norm_prologue(t0, wg.x, lid);
  var acc: array<f32, TOK>;
  for (var r = 0u; r < TOK; r++) { acc[r] = 0.0; }
  if (e < E) {
    let wbase = e * u.hidden;
    for (var h = lane; h < u.hidden; h += LANES) {
      let wv = weight_at(wbase + h);
      for (var r = 0u; r < TOK; r++) {
        if (t0 + r < u.tokens) {
          acc[r] = fma(wv, x_value(t0 + r, r, h), acc[r]);
        }
      }
    }
  }
  for (var r = 0u; r < TOK; r++) { red[r * WG + lid] = acc[r]; }
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var r = 0u; r < TOK; r++) { red[r * WG + lid] += red[r * WG + lid + s]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && e < E) {
    for (var r = 0u; r < TOK; r++) {
      if (t0 + r < u.tokens) { logits[(t0 + r) * E + e] = red[r * WG + lid]; }
    }
  }
}
