// y[b, h, n] = Σ_k x[b, h, k] · W[h, k, n] for every head h at once (a batched GEMM with tiny M = batch).
// Workgroup (n block of 4·WG columns, head h, batch block of BB rows): x's block is staged KC values at a
// time in workgroup memory, each thread owns 4 adjacent columns for the BB rows, so a weight row is read
// once per batch block, coalesced along n. Prepended by the launcher: WG, BB, KC, the bindings, the
// uniforms `u` and weight_at().
var<workgroup> xs: array<f32, BB * KC>;

fn w4(i: u32, n0: u32) -> vec4<f32> {
  if (n0 + 3u < u.n) {
    return vec4<f32>(weight_at(i), weight_at(i + 1u), weight_at(i + 2u), weight_at(i + 3u));
  }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (n0 + j < u.n) { v[j] = weight_at(i + j); }
  }
  return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let b0 = wg.z * BB;
  let n0 = (wg.x * WG + lid) * 4u;
  var acc: array<vec4<f32>, BB>;
  for (var bb = 0u; bb < BB; bb++) { acc[bb] = vec4<f32>(0.0); }
  for (var k0 = 0u; k0 < u.k; k0 += KC) {
    for (var i = lid; i < BB * KC; i += WG) {
      let b = b0 + i / KC;
      let k = k0 + i % KC;
      var v = 0.0;
      if (b < u.batch && k < u.k) { v = x[u.x_offset + b * u.x_row_stride + h * u.x_head_stride + k]; }
      xs[i] = v;
    }
    workgroupBarrier();
    if (n0 < u.n) {
      let kn = min(KC, u.k - k0);
      var wi = u.w_offset + h * u.w_head_stride + k0 * u.w_row_stride + n0;
      for (var kk = 0u; kk < kn; kk++) {
        let wv = w4(wi, n0);
        for (var bb = 0u; bb < BB; bb++) { acc[bb] = fma(vec4<f32>(xs[bb * KC + kk]), wv, acc[bb]); }
        wi += u.w_row_stride;
      }
    }
    workgroupBarrier();
  }
  if (n0 >= u.n) { return; }
  for (var bb = 0u; bb < BB; bb++) {
    let b = b0 + bb;
    if (b >= u.batch) { break; }
    let o = u.y_offset + b * u.y_row_stride + h * u.y_head_stride + n0;
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j < u.n) { y[o + j] = acc[bb][j]; }
    }
  }
}
