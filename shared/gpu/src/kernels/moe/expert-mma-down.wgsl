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

@group(0) @binding(0) var<storage, read> act: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> groups: array<u32>;
@group(0) @binding(2) var<storage, read> wdown: array<u32>;
@group(0) @binding(3) var<storage, read_write> slot_out: array<f32>;

const WG = 128u;
const XL = TM * BK / 4u / WG;
const WL = BN * BK / 2u / WG;
var<workgroup> xs: array<f16, TM * STR>;
var<workgroup> ws: array<f16, BN * STR>;
var<workgroup> out_tile: array<f32, 4 * 256>;
var<workgroup> tinfo: vec4<u32>;

struct Slab {
  x: array<vec4<f32>, XL>,
  w: array<DownRaw, WL>,
}

fn fetch(k0: u32, lid: u32, r0: u32, rows: u32, n0: u32, wbase: u32) -> Slab {
  var s: Slab;
  for (var i = 0u; i < XL; i++) {
    let v = lid + i * WG;
    let m = v / (BK / 4u);
    let kq = (v % (BK / 4u)) * 4u;
    s.x[i] = vec4<f32>(0.0);
    if (m < rows && k0 + kq < u.K) { s.x[i] = x4((r0 + m) * u.K + k0 + kq); }
  }
  for (var i = 0u; i < WL; i++) {
    let v = lid + i * WG;
    let nn = v / (BK / 2u);
    let kv = (v % (BK / 2u)) * 2u;
    s.w[i] = DownRaw();
    if (n0 + nn < u.N && k0 + kv < u.K) { s.w[i] = down_raw(wbase + (n0 + nn) * u.K + k0 + kv); }
  }
  return s;
}

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

  /*@DECLARE@*/

  var next = fetch(0u, lid, r0, rows, n0, wbase);
  for (var k0 = 0u; k0 < u.K; k0 += BK) {
    workgroupBarrier();   // the previous slab's products are done with xs and ws
    for (var i = 0u; i < XL; i++) {
      let v = lid + i * WG;
      let o = (v / (BK / 4u)) * STR + (v % (BK / 4u)) * 4u;
      let val = next.x[i];
      xs[o] = f16(val.x); xs[o + 1u] = f16(val.y); xs[o + 2u] = f16(val.z); xs[o + 3u] = f16(val.w);
    }
    for (var i = 0u; i < WL; i++) {
      let v = lid + i * WG;
      let o = (v / (BK / 2u)) * STR + (v % (BK / 2u)) * 2u;
      let w = vec2<f16>(down_unpack(next.w[i]));
      ws[o] = w.x; ws[o + 1u] = w.y;
    }
    workgroupBarrier();
    next = fetch(k0 + BK, lid, r0, rows, n0, wbase);
    for (var kk = 0u; kk < BK; kk += 16u) {
      /*@MULTIPLY@*/
    }
  }
  workgroupBarrier();

  /*@WRITE@*/
}
