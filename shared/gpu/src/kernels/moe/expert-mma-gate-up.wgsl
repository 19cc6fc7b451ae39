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

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> groups: array<u32>;
@group(0) @binding(2) var<storage, read> wgate: array<u32>;
@group(0) @binding(3) var<storage, read> wup: array<u32>;
@group(0) @binding(4) var<storage, read_write> act: array<f32>;

const WG = 128u;
const XL = TM * BK / 4u / WG;   // vec4 loads of the x slab per thread
const WL = BN * BK / 2u / WG;   // weight pairs of one slab per thread
const NONE = 0xffffffffu;
var<workgroup> xs: array<f16, TM * STR>;
var<workgroup> gs: array<f16, BN * STR>;
var<workgroup> us: array<f16, BN * STR>;
var<workgroup> out_g: array<f32, 4 * 256>;
var<workgroup> out_u: array<f32, 4 * 256>;
var<workgroup> tinfo: vec4<u32>;

struct Slab {
  x: array<vec4<f32>, XL>,
  g: array<GateRaw, WL>,
  w: array<UpRaw, WL>,
}

// This thread's share of the slab at k0: x rows (xr: the row's base, NONE past the tile) and weight rows n0..
fn fetch(k0: u32, lid: u32, xr: ptr<function, array<u32, XL>>, n0: u32, gbase: u32, ubase: u32) -> Slab {
  var s: Slab;
  for (var i = 0u; i < XL; i++) {
    let kq = ((lid + i * WG) % (BK / 4u)) * 4u;
    s.x[i] = vec4<f32>(0.0);
    if ((*xr)[i] != NONE && k0 + kq < u.K) { s.x[i] = x4((*xr)[i] + k0 + kq); }
  }
  for (var i = 0u; i < WL; i++) {
    let v = lid + i * WG;
    let nn = v / (BK / 2u);
    let kv = (v % (BK / 2u)) * 2u;
    s.g[i] = GateRaw();
    s.w[i] = UpRaw();
    if (n0 + nn < u.N && k0 + kv < u.K) {
      s.g[i] = gate_raw(gbase + (n0 + nn) * u.K + k0 + kv);
      s.w[i] = up_raw(ubase + (n0 + nn) * u.K + k0 + kv);
    }
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

  // the x row each of this thread's load slots reads (fixed across K); NONE = beyond the tile
  var xr: array<u32, XL>;
  for (var i = 0u; i < XL; i++) {
    let m = (lid + i * WG) / (BK / 4u);
    var base = NONE;
    if (m < rows) { base = (groups[u.sorted_base + r0 + m] / u.topk) * u.x_stride + u.x_offset; }
    xr[i] = base;
  }
  let gbase = (e - u.first_expert) * u.g_stride + u.g_offset;
  let ubase = (e - u.first_expert) * u.u_stride + u.u_offset;

  /*@DECLARE@*/

  var next = fetch(0u, lid, &xr, n0, gbase, ubase);
  for (var k0 = 0u; k0 < u.K; k0 += BK) {
    workgroupBarrier();   // the previous slab's products are done with xs, gs and us
    for (var i = 0u; i < XL; i++) {
      let v = lid + i * WG;
      let o = (v / (BK / 4u)) * STR + (v % (BK / 4u)) * 4u;
      let val = next.x[i];
      xs[o] = f16(val.x); xs[o + 1u] = f16(val.y); xs[o + 2u] = f16(val.z); xs[o + 3u] = f16(val.w);
    }
    for (var i = 0u; i < WL; i++) {
      let v = lid + i * WG;
      let o = (v / (BK / 2u)) * STR + (v % (BK / 2u)) * 2u;
      let g = vec2<f16>(gate_unpack(next.g[i]));
      let w = vec2<f16>(up_unpack(next.w[i]));
      gs[o] = g.x; gs[o + 1u] = g.y;
      us[o] = w.x; us[o + 1u] = w.y;
    }
    workgroupBarrier();
    next = fetch(k0 + BK, lid, &xr, n0, gbase, ubase);
    for (var kk = 0u; kk < BK; kk += 16u) {
      /*@MULTIPLY@*/
    }
  }
  workgroupBarrier();

  /*@WRITE@*/
}
