// Merge of the KV splits of grouped decode attention (SGLang's stage 2): for each (sequence, head),
//   M = max_s lse2_s,  w_s = exp2(lse2_s - M),  out = Σ_s w_s · o_s / Σ_s w_s
// which is exact (o_s are the splits' normalized outputs, lse2_s = m_s + log2(l_s) in base 2). Empty splits
// carry lse2 = -1e30 and o = 0, so they weigh 0; a sequence with no tokens at all gets out = 0.
//
// A thread owns one vec4 of a row: the row's R4 vec4s are cut into CHUNKS workgroups of WG (at batch 1 a
// workgroup a head walking all of them, one split's load waited on a trip, took ~13 µs a layer on the H200).
// Prepended by the launcher: constants R4 (latent dims / 4), WG (threads), CHUNKS (ceil(R4 / WG)); bindings
//   0 o_part: array<vec4<f32>> [batch, heads, num_splits, R4]   1 lse: array<f32> [batch, heads, num_splits]
//   2 out: array<vec4<f32>> [batch, heads, R4]   3 uniforms u (heads, num_splits)
// Grid: (heads · CHUNKS, batch).

//!include online-softmax

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * u.heads + wg.x / CHUNKS;
  let c = (wg.x % CHUNKS) * WG + lid;
  if (c >= R4) { return; }
  let S = u.num_splits;
  var m = MASKED;
  for (var s = 0u; s < S; s++) { m = max(m, lse[row * S + s]); }
  var den = 0.0;
  for (var s = 0u; s < S; s++) { den += exp2(lse[row * S + s] - m); }
  let inv = 1.0 / den;
  var acc = vec4<f32>(0.0);
  // 8 splits' loads issued together, then added in split order
  var s = 0u;
  for (; s + 8u <= S; s += 8u) {
    var v: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) { v[j] = o_part[(row * S + s + j) * R4 + c]; }
    for (var j = 0u; j < 8u; j++) { acc = fma(vec4<f32>(exp2(lse[row * S + s + j] - m)), v[j], acc); }
  }
  for (; s < S; s++) { acc = fma(vec4<f32>(exp2(lse[row * S + s] - m)), o_part[(row * S + s) * R4 + c], acc); }
  out[row * R4 + c] = acc * inv;
}
