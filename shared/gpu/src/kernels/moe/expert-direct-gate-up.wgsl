// Routed experts, first half, on subgroup matrices with the weights read straight from memory into the
// right-hand matrices (no workgroup-memory staging): the same work, bindings (wgate / wup as f16) and grid as
// expert-mma-gate-up.wgsl, for one row tile (≤ TM sorted rows of expert e) and BN intermediate columns:
//   act[p, n] = silu(x[t_p] · W_gate[e, n, :]) · (x[t_p] · W_up[e, n, :]).
// Here every weight is used by the one subgroup that loads it (TM / 16 products), so staging the weights
// through workgroup memory (convert, store, barrier, load) would only cost time: the 4 subgroups sit side by
// side, each on all TM rows and its own CPS × 16 columns of gate and of up, and load their weight tiles from
// the f16 buffer (a 16 × 16 tile is 16 runs of 32 contiguous bytes, rows of W being columns of the col-major
// right operand). Only the gathered x rows go through workgroup memory, BK values of K at a time (BK divides K:
// the unrolled products have no bounds checks, so the compiler may issue all of a slab's weight loads before its
// first product), the next slab's x loaded into registers while the current one is multiplied.
// Prepended by the launcher: E, TM, BN (= 64 · CPS), BK, STR, CPS, struct F8, x4(i), silu(), expert_tile(),
// uniforms u, and the enables/aliases LeftT, RightT, ResT. Grid: (max tiles of this chunk, ceil(N / BN)).

// Bindings: x, groups, wgate, wup, act (rw).
/*@BINDINGS@*/

const WG = 128u;
const NONE = 0xffffffffu;
var<workgroup> xs: array<f16, TM * STR>;
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
  let sm = 0u;
  let sn = sg * (BN / 4u);

  let gbase = (e - u.first_expert) * u.g_stride + u.g_offset;
  let ubase = (e - u.first_expert) * u.u_stride + u.u_offset;

  // accumulators, each column tile's first weight row (clamped into the matrix: a tile past N reads the last
  // tile again and writes nothing), and this thread's share of an x slab as named registers
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
