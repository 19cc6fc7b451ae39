// Routed experts, second half, on subgroup matrices (tensor cores): the same work, bindings and grid as
// expert-tiled-down.wgsl, for one row tile (≤ TM sorted rows of expert e) and BN hidden columns:
//   slot_out[a_p, n] = act[p, :] · W_down[e, n, :], a_p the assignment at sorted row p.
// 4 subgroups of 32 sit SGM × SGN over the TM × BN block, each with (TM/SGM/16) × (BN/SGN/16) result tiles; the contiguous act rows and
// the weight slab go to workgroup memory as f16 (a pair of weights a lane) while the next slab's loads are in
// flight into registers, as in expert-mma-gate-up.wgsl.
// Prepended by the launcher: E, TM, BN, BK, STR, SGM, SGN, struct F8, DownRaw with down_raw(i) (weights i, i + 1) /
// down_unpack (→ vec2<f32>), x4(i)
// (reads `act`), expert_tile(), uniforms u, and the enables/aliases LeftT, RightT, ResT.
// Grid: (max tiles of this chunk, ceil(N / BN)).

// Bindings: act, groups, wdown, slot_out (rw).
/*@BINDINGS@*/

const WG = 128u;
const NONE = 0xffffffffu;
var<workgroup> xs: array<f16, TM * STR>;
var<workgroup> ws: array<f16, BN * STR>;
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
  let sm = (sg / SGN) * (TM / SGM);
  let sn = (sg % SGN) * (BN / SGN);
  let wbase = (e - u.first_expert) * u.w_stride + u.w_offset;

  // accumulators, and this thread's share of a slab as named registers (see expert-mma-gate-up.wgsl)
  /*@DECLARE@*/

  /*@FETCH_FIRST@*/
  for (var k0 = 0u; k0 < u.K; k0 += BK) {
    workgroupBarrier();   // the previous slab's products are done with xs and ws
    /*@STORE@*/
    workgroupBarrier();
    let kn = k0 + BK;
    /*@FETCH_NEXT@*/
    for (var kk = 0u; kk < BK; kk += 16u) {
      /*@MULTIPLY@*/
    }
  }
  workgroupBarrier();

  /*@WRITE@*/
}
