// Routed experts, second half, GEMV form: for one row tile of one expert and COLS consecutive hidden columns n,
//   slot_out[a_p, n] = act[p, :] · W_down[e, n, :]
// for every sorted row p of the tile, a_p being the (token, slot) assignment stored at row p (group.wgsl), so
// the output lands in assignment order [tokens·topk, N] for the combine. Same structure as
// expert-gemv-gate-up.wgsl (one weight matrix, no activation; the lanes' sums by the launcher's REDUCE likewise).
//
// Bindings, in order (numbered by the launcher):
//   act:      array<vec4<f32>>, read     [sorted rows, K]
//   groups:     array<u32>, read           grouping output (group.wgsl)
//   wdown:    array<vec4<u32>>, read     down weights of experts [first_expert, +expert_count):
//                                                    expert e, row n at (e - first_expert)*w_stride + w_offset + n*K
//   slot_out: array<f32>, read_write     [tokens·topk, N]
//   u:        uniforms { K, N, first_expert, expert_count, w_stride, w_offset, tile_base, sorted_base }
// Grid: (max tiles of this chunk, ceil(N / COLS)). Compile-time (prelude): E, TM, COLS, LANES, U, struct F8,
// down8(i), x8(i) (reads `act`).

/*@BINDINGS@*/

const WG = COLS * LANES;
const OUTS = COLS * TM;
const STEP = LANES * 8u;
/*@REDUCE_DECL@*/
var<workgroup> tinfo: vec4<u32>;

fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { tinfo = expert_tile(wg.x); }
  let info = workgroupUniformLoad(&tinfo);
  if (info.x == 0u) { return; }
  let e = info.y;
  let r0 = info.z;
  let rows = info.w;

  let lane = lid % LANES;
  let c = lid / LANES;
  let n = min(wg.y * COLS + c, u.N - 1u);
  let wb = (e - u.first_expert) * u.w_stride + u.w_offset + n * u.K;
  var acc: array<vec4<f32>, TM>;
  for (var r = 0u; r < TM; r++) { acc[r] = vec4<f32>(0.0); }
  var k = lane * 8u;
  for (; k + (U - 1u) * STEP < u.K; k += U * STEP) {
    var w: array<F8, U>;
    for (var q = 0u; q < U; q++) { w[q] = down8(wb + k + q * STEP); }
    for (var r = 0u; r < TM; r++) {
      if (r < rows) {
        for (var q = 0u; q < U; q++) {
          let xv = x8((r0 + r) * u.K + k + q * STEP);
          acc[r] = fma(xv.lo, w[q].lo, fma(xv.hi, w[q].hi, acc[r]));
        }
      }
    }
  }
  for (; k < u.K; k += STEP) {
    let w = down8(wb + k);
    for (var r = 0u; r < TM; r++) {
      if (r < rows) {
        let xv = x8((r0 + r) * u.K + k);
        acc[r] = fma(xv.lo, w.lo, fma(xv.hi, w.hi, acc[r]));
      }
    }
  }
  /*@REDUCE@*/
}
