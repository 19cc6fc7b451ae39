// MoE combine: dst[t, h] (+)= Σ_j weights[t, j] · slot_out[t·K + j, h], summed over j in order (deterministic,
// no float atomics). With `accumulate` the sum is added to what `dst` holds (the residual stream, or the shared
// experts' output), else it overwrites it.
//
// Bindings, in order (numbered by the launcher):
//   slot_out: array<f32>, read        [tokens·K, hidden] per-(token, slot) expert outputs
//   weights:  array<f32>, read        [tokens, K] routing weights
//   dst:      array<f32>, read_write  row t at t*out_stride + out_offset
//   u:        uniforms { tokens, hidden, out_stride, out_offset, accumulate }
// Compile-time (prelude): K, WG. Grid: (ceil(hidden / WG), min(tokens, 65535), ceil(tokens / 65535)).

/*@BINDINGS@*/

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let h = wg.x * WG + lid;
  let t = wg.y + wg.z * nwg.y;
  if (h >= u.hidden || t >= u.tokens) { return; }
  var s = 0.0;
  for (var j = 0u; j < K; j++) {
    s = fma(weights[t * K + j], slot_out[(t * K + j) * u.hidden + h], s);
  }
  let o = t * u.out_stride + u.out_offset + h;
  if (u.accumulate != 0u) { dst[o] = dst[o] + s; } else { dst[o] = s; }
}
