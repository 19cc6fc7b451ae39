// Routed experts, first half, on subgroup matrices (tensor cores): the same work, bindings and grid as
// expert-tiled-gate-up.wgsl, for one row tile (≤ TM sorted rows of expert e) and BN intermediate columns:
//   act[p, n] = silu(x[t_p] · W_gate[e, n, :]) · (x[t_p] · W_up[e, n, :]).
// 4 subgroups of 32 sit SGM × SGN over the TM × BN block, each with (TM/SGM/16) × (BN/SGN/16) result tiles of gate and of
// up (named registers, declared and multiplied by the launcher's generated code). K advances
// BK at a time: the gathered x rows and both weight slabs are written to workgroup memory as f16 (rows padded
// to STR), then each subgroup multiplies 16 × 16 × 16 tiles while the next slab's loads are in flight into
// registers (raw words; converted when stored), so the loads' latency hides behind the products. Weights move a
// pair of values a lane, neighbouring lanes along a row's K, so each f16 store of a warp hits 32 words (a lane
// converting 8 contiguous values made 4-way bank conflicts on every store, the staging's bound at decode sizes). The tiles
// leave through a per-subgroup scratch (gate and up side by side), where each lane applies silu·mul to 8 of
// the 256 values.
// Prepended by the launcher: E, TM, BN, BK, STR, SGM, SGN, struct F8, GateRaw / UpRaw with gate_raw(i) / up_raw(i)
// (weights i and i + 1, i even, as loaded) and gate_unpack / up_unpack (→ vec2<f32>), x4(i), silu(),
// expert_tile(), uniforms u, and the enables/aliases LeftT, RightT, ResT. Grid: (max tiles of this chunk, ceil(N / BN)).

// Bindings: x, groups, wgate, wup, act (rw).
/*@BINDINGS@*/

const WG = 128u;
const NONE = 0xffffffffu;
var<workgroup> xs: array<f16, TM * STR>;
var<workgroup> gs: array<f16, BN * STR>;
var<workgroup> us: array<f16, BN * STR>;
var<workgroup> out_g: array<f32, 4 * 256>;
var<workgroup> out_u: array<f32, 4 * 256>;
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

  let gbase = (e - u.first_expert) * u.g_stride + u.g_offset;
  let ubase = (e - u.first_expert) * u.u_stride + u.u_offset;

  // accumulators, and this thread's share of a slab as named registers (the x row base of each x load slot,
  // NONE past the tile): arrays indexed in loops can land in local memory, which turns the prefetch into a
  // wait on every load
  /*@DECLARE@*/

  /*@FETCH_FIRST@*/
  for (var k0 = 0u; k0 < u.K; k0 += BK) {
    workgroupBarrier();   // the previous slab's products are done with xs, gs and us
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
