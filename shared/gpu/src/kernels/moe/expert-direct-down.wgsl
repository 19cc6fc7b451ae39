// Routed experts, second half, on subgroup matrices with the weights read straight from memory into the
// right-hand matrices, as expert-direct-gate-up.wgsl: the same work, bindings (wdown as f16) and grid as
// expert-mma-down.wgsl, for one row tile (≤ TM sorted rows of expert e) and BN hidden columns:
//   slot_out[a_p, n] = act[p, :] · W_down[e, n, :], a_p the assignment at sorted row p.
// The contiguous act rows go through workgroup memory BK values at a time; each subgroup reads its CPS × 16
// columns' weight tiles from the f16 buffer.
// Prepended by the launcher: E, TM, BN (= 64 · CPS), BK, STR, CPS, struct F8, x4(i) (reads `act`), expert_tile(), uniforms u,
// and the enables/aliases LeftT, RightT, ResT. Grid: (max tiles of this chunk, ceil(N / BN)).

// Bindings: act, groups, wdown, slot_out (rw).
/*@BINDINGS@*/

const WG = 128u;
const NONE = 0xffffffffu;
var<workgroup> xs: array<f16, TM * STR>;
var<workgroup> out_tile: array<f32, 4 * 256>;
var<workgroup> tinfo: vec4<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { tinfo = expert_tile(wg.x); }
  let info = workgroupUniformLoad(&tinfo);
  if (info.x == 0u) { return; }
  let e = info.y;
  let r0 = info.z;
  let rows = info.w;
  let n0 = wg.y * BN;
  let sg = lid / 32u;
  let lane = lid % 32u;
  let sm = 0u;
  let sn = sg * (BN / 4u);
  let wbase = (e - u.first_expert) * u.w_stride + u.w_offset;

  // accumulators, column tiles' first weight rows and x registers (see expert-direct-gate-up.wgsl)
  /*@DECLARE@*/

  /*@FETCH_FIRST@*/
  for (var k0 = 0u; k0 < u.K; k0 += BK) {
    workgroupBarrier();   // the previous slab's products are done with xs
    /*@STORE@*/
    workgroupBarrier();
    let kn = k0 + BK;
    /*@FETCH_NEXT@*/
    /*@MULTIPLY@*/
  }
  workgroupBarrier();

  /*@WRITE@*/
}
