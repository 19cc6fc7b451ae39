// MoE router logits: logits[t, e] = Σ_h x[t, h] · W_gate[e, h], accumulated in f32 (transformers upcasts both
// to float32 before its F.linear).
//
// Bindings, in order (numbered by the launcher):
//   x:      array<f32>, read        hidden states, row t at t*x_stride + x_offset
//   w:      array<u32>, read        W_gate [E, hidden] in its stored dtype (read via weight_at)
//   logits: array<f32>, read_write  [tokens, E]
//   u:      uniforms { tokens, hidden, x_stride, x_offset }
// Compile-time constants (prelude): E (experts), EPW (experts per workgroup), LANES (threads per expert, a power
// of two, splitting hidden), TOK (tokens per workgroup), KC (input values staged at a time, a multiple of
// LANES), and the input's reader: x_value(t, r, h) (token t, the workgroup's row r, element h) and its prologue
// norm_prologue(t0, column, lid) (launcher-written). Workgroup = EPW·LANES threads; grid = (ceil(E/EPW),
// ceil(tokens/TOK)).
// Each thread walks its expert row with stride LANES (adjacent lanes read adjacent weights), keeping TOK partial
// sums, then the LANES partials are tree-reduced in workgroup memory. The TOK input rows are staged in
// workgroup memory KC values at a time (as x_value gives them) and the weights are loaded 8 a thread at once:
// reading each row from memory (and norming it) once per value of every expert's walk made the kernel a chain
// of dependent loads, 58 µs a layer at batch 64 on the H100 (1.5 ms of the step). Each lane's sums still add
// h = lane, lane + LANES, … in order, so the logits are bit for bit those of that walk (and route-fused.wgsl's).
// With the norm (post_attention_layernorm folded in, bindings norm_w and xn, uniform eps), the prologue computes
// the workgroup's TOK rows' 1 / rms as rms-norm does (the rms-rows piece), x_value reads x·inv·w, and the first
// column of workgroups writes those normed rows to xn for the experts: the logits and xn are bit for bit those of
// rms-norm then this kernel without it.

/*@BINDINGS@*/

const WG = EPW * LANES;
var<workgroup> red: array<f32, WG * TOK>;
var<workgroup> xs: array<f32, TOK * KC>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let lane = lid % LANES;
  let e = wg.x * EPW + lid / LANES;
  let t0 = wg.y * TOK;
  norm_prologue(t0, wg.x, lid);
  var acc: array<f32, TOK>;
  for (var r = 0u; r < TOK; r++) { acc[r] = 0.0; }
  // past E, a lane walks the last expert's row and its sums are dropped
  let wbase = min(e, E - 1u) * u.hidden;
  for (var kc = 0u; kc < u.hidden; kc += KC) {
    let kn = min(KC, u.hidden - kc);
    workgroupBarrier();   // the previous chunk's reads are done
    for (var i = lid; i < TOK * KC; i += WG) {
      let r = i / KC;
      let c = i % KC;
      var v = 0.0;
      if (t0 + r < u.tokens && c < kn) { v = x_value(t0 + r, r, kc + c); }
      xs[i] = v;
    }
    workgroupBarrier();
    var c = lane;
    for (; c + 7u * LANES < kn; c += 8u * LANES) {
      // named, not an indexed array (which may land in local memory and wait on each load)
      let w0 = weight_at(wbase + kc + c);
      let w1 = weight_at(wbase + kc + c + LANES);
      let w2 = weight_at(wbase + kc + c + 2u * LANES);
      let w3 = weight_at(wbase + kc + c + 3u * LANES);
      let w4 = weight_at(wbase + kc + c + 4u * LANES);
      let w5 = weight_at(wbase + kc + c + 5u * LANES);
      let w6 = weight_at(wbase + kc + c + 6u * LANES);
      let w7 = weight_at(wbase + kc + c + 7u * LANES);
      for (var r = 0u; r < TOK; r++) {
        let xr = r * KC + c;
        var a = acc[r];
        a = fma(w0, xs[xr], a);
        a = fma(w1, xs[xr + LANES], a);
        a = fma(w2, xs[xr + 2u * LANES], a);
        a = fma(w3, xs[xr + 3u * LANES], a);
        a = fma(w4, xs[xr + 4u * LANES], a);
        a = fma(w5, xs[xr + 5u * LANES], a);
        a = fma(w6, xs[xr + 6u * LANES], a);
        a = fma(w7, xs[xr + 7u * LANES], a);
        acc[r] = a;
      }
    }
    for (; c < kn; c += LANES) {
      let wv = weight_at(wbase + kc + c);
      for (var r = 0u; r < TOK; r++) { acc[r] = fma(wv, xs[r * KC + c], acc[r]); }
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
