// Routed experts, second half, GEMV form with the combine in it (decode batch 1): for hidden column n of token t,
//   out[t, n] (+)= Σ_j weights[t, j] · (act[t·K + j, :] · W_down[ids[t, j], n, :])
// over the token's K slots in order. A workgroup is the token's K slots side by side, LANES invocations each
// (slot j's are invocations j·LANES ..), so every invocation walks one weight row as in the down GEMV: as many
// rows in flight as there, and no combine dispatch after. Each slot's dot product is the down GEMV's
// (expert-gemv-down.wgsl: the same lanes walking K in the same steps, the same lane sum by the launcher's REDUCE),
// and one invocation adds the slots as combine.wgsl does (fma, j in order, then onto out), so out is bit for bit
// the down kernel then the combine. act rows are in assignment order (a = t·K + j: the gate/up GEMV writes them
// there for this form). One token's slots name each expert at most once, so no weight row is read twice; with
// more tokens the same experts' rows would be read once per token.
//
// Bindings, in order (numbered by the launcher):
//   act:     array<vec4<f32>>, read     [tokens·K, I] silu(gate)·up of each assignment
//   ids:     array<u32>, read           [tokens, K] expert of each slot (the shared experts' slots included)
//   weights: array<f32>, read           [tokens, K] routing weights (1 for the shared experts' slots)
//   wdown:   array<vec4<u32>>, read     down weights [E, H, I]: expert e, row n at e·w_stride + n·K
//   out:     array<f32>, read_write     row t at t·out_stride + out_offset
//   u:       uniforms { K, N, w_stride, out_stride, out_offset, accumulate }
// Grid: (N, tokens). Compile-time (prelude): TOPK, LANES, U, struct F8, down8(i), x8(i) (reads act).

/*@BINDINGS@*/

const WG = TOPK * LANES;
const STEP = LANES * 8u;
var<workgroup> slots: array<f32, TOPK>;
/*@REDUCE_DECL@*/

fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wg.y;
  let n = wg.x;
  let lane = lid % LANES;
  let j = lid / LANES;
  let a = t * TOPK + j;
  let wb = ids[a] * u.w_stride + n * u.K;
  let xb = a * u.K;
  var acc = vec4<f32>(0.0);
  var k = lane * 8u;
  for (; k + (U - 1u) * STEP < u.K; k += U * STEP) {
    var w: array<F8, U>;
    for (var q = 0u; q < U; q++) { w[q] = down8(wb + k + q * STEP); }
    for (var q = 0u; q < U; q++) {
      let xv = x8(xb + k + q * STEP);
      acc = fma(xv.lo, w[q].lo, fma(xv.hi, w[q].hi, acc));
    }
  }
  for (; k < u.K; k += STEP) {
    let w = down8(wb + k);
    let xv = x8(xb + k);
    acc = fma(xv.lo, w.lo, fma(xv.hi, w.hi, acc));
  }
  // slots[j] = the slot's sum, from its first lane
  /*@REDUCE@*/
  workgroupBarrier();
  if (lid == 0u) {
    var s = 0.0;
    for (var i = 0u; i < TOPK; i++) { s = fma(weights[t * TOPK + i], slots[i], s); }
    let o = t * u.out_stride + u.out_offset + n;
    if (u.accumulate != 0u) { out[o] = out[o] + s; } else { out[o] = s; }
  }
}
