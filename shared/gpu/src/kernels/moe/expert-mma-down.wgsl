// Routed experts, second half, on subgroup matrices (tensor cores): the same work, bindings and grid as
// expert-tiled-down.wgsl, for one row tile (≤ TM = 64 sorted rows of expert e) and BN = 64 hidden columns:
//   slot_out[a_p, n] = act[p, :] · W_down[e, n, :], a_p the assignment at sorted row p.
// Same tiling as expert-mma-gate-up.wgsl with one weight matrix and the contiguous act rows as input.
// Prepended by the launcher: E, TM, BN, BK, STR, struct F8, down8(i), x4(i) (reads `act`), expert_tile(),
// uniforms u, and the enables/aliases LeftT, RightT, ResT. Grid: (max tiles of this chunk, ceil(N / BN)).

@group(0) @binding(0) var<storage, read> act: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> groups: array<u32>;
@group(0) @binding(2) var<storage, read> wdown: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> slot_out: array<f32>;

const WG = 128u;
const XL = TM * BK / 4u / WG;
const WL = BN * BK / 8u / WG;
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
  let sm = (sg / 2u) * 32u;
  let sn = (sg % 2u) * 32u;
  let wbase = (e - u.first_expert) * u.w_stride + u.w_offset;

  var c00 = ResT(); var c01 = ResT(); var c10 = ResT(); var c11 = ResT();

  for (var k0 = 0u; k0 < u.K; k0 += BK) {
    for (var i = 0u; i < XL; i++) {
      let v = lid + i * WG;
      let m = v / (BK / 4u);
      let kq = (v % (BK / 4u)) * 4u;
      var val = vec4<f32>(0.0);
      if (m < rows && k0 + kq < u.K) { val = x4((r0 + m) * u.K + k0 + kq); }
      let o = m * STR + kq;
      xs[o] = f16(val.x); xs[o + 1u] = f16(val.y); xs[o + 2u] = f16(val.z); xs[o + 3u] = f16(val.w);
    }
    for (var i = 0u; i < WL; i++) {
      let v = lid + i * WG;
      let nn = v / (BK / 8u);
      let kv = (v % (BK / 8u)) * 8u;
      var w = F8(vec4<f32>(0.0), vec4<f32>(0.0));
      if (n0 + nn < u.N && k0 + kv < u.K) { w = down8(wbase + (n0 + nn) * u.K + k0 + kv); }
      let o = nn * STR + kv;
      for (var q = 0u; q < 4u; q++) { ws[o + q] = f16(w.lo[q]); ws[o + 4u + q] = f16(w.hi[q]); }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk += 16u) {
      let a0 = subgroupMatrixLoad<LeftT, row_major>(&xs, sm * STR + kk, STR);
      let a1 = subgroupMatrixLoad<LeftT, row_major>(&xs, (sm + 16u) * STR + kk, STR);
      let b0 = subgroupMatrixLoad<RightT, col_major>(&ws, sn * STR + kk, STR);
      let b1 = subgroupMatrixLoad<RightT, col_major>(&ws, (sn + 16u) * STR + kk, STR);
      c00 = subgroupMatrixMultiplyAccumulate(a0, b0, c00);
      c01 = subgroupMatrixMultiplyAccumulate(a0, b1, c01);
      c10 = subgroupMatrixMultiplyAccumulate(a1, b0, c10);
      c11 = subgroupMatrixMultiplyAccumulate(a1, b1, c11);
    }
    workgroupBarrier();
  }

  /*@WRITE@*/
}
