// Routed experts, second half, tiled GEMM form: for one row tile (≤ TM sorted rows of expert e) and BN hidden
// columns, slot_out[a_p, n] = act[p, :] · W_down[e, n, :], a_p the assignment at sorted row p. Same tiling as
// expert-tiled-gate-up.wgsl with one weight matrix and the contiguous act rows as input.
//
// Bindings: identical to expert-gemv-down.wgsl:
//   act: array<vec4<f32>>, groups: array<u32>, wdown: array<vec4<u32>>,
//   slot_out: array<f32> (read_write),
//   u: uniforms { K, N, first_expert, expert_count, w_stride, w_offset, tile_base, sorted_base }
// Grid: (max tiles of this chunk, ceil(N / BN)). Compile-time (prelude): E, TM, BN, BK, RM, RN, struct F8,
// down8(i), x4(i) (reads `act`).

/*@BINDINGS@*/

const TX = BN / RN;
const TY = TM / RM;
const WG = TX * TY;
const XV = TM * BK / 4u;
const XL = (XV + WG - 1u) / WG;
const WV = BN * BK / 8u;
const WL = (WV + WG - 1u) / WG;
var<workgroup> xs: array<f32, BK * TM>;
var<workgroup> ws: array<f32, BK * BN>;
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
  let tx = lid % TX;
  let ty = lid / TX;
  let wbase = (e - u.first_expert) * u.w_stride + u.w_offset;

  var acc: array<f32, RM * RN>;
  for (var i = 0u; i < RM * RN; i++) { acc[i] = 0.0; }

  for (var k0 = 0u; k0 < u.K; k0 += BK) {
    for (var i = 0u; i < XL; i++) {
      let v = lid + i * WG;
      if (v < XV) {
        let m = v / (BK / 4u);
        let kq = (v % (BK / 4u)) * 4u;
        var val = vec4<f32>(0.0);
        if (m < rows && k0 + kq < u.K) { val = x4((r0 + m) * u.K + k0 + kq); }
        xs[(kq + 0u) * TM + m] = val.x;
        xs[(kq + 1u) * TM + m] = val.y;
        xs[(kq + 2u) * TM + m] = val.z;
        xs[(kq + 3u) * TM + m] = val.w;
      }
    }
    for (var i = 0u; i < WL; i++) {
      let v = lid + i * WG;
      if (v < WV) {
        let nn = v / (BK / 8u);
        let kv = (v % (BK / 8u)) * 8u;
        var w = F8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (n0 + nn < u.N && k0 + kv < u.K) { w = down8(wbase + (n0 + nn) * u.K + k0 + kv); }
        for (var q = 0u; q < 4u; q++) {
          ws[(kv + q) * BN + nn] = w.lo[q];
          ws[(kv + 4u + q) * BN + nn] = w.hi[q];
        }
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var a: array<f32, RM>;
      var b: array<f32, RN>;
      for (var i = 0u; i < RM; i++) { a[i] = xs[kk * TM + ty + i * TY]; }
      for (var j = 0u; j < RN; j++) { b[j] = ws[kk * BN + tx + j * TX]; }
      for (var i = 0u; i < RM; i++) {
        for (var j = 0u; j < RN; j++) { acc[i * RN + j] = fma(a[i], b[j], acc[i * RN + j]); }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < RM; i++) {
    let m = ty + i * TY;
    if (m < rows) {
      let a = groups[u.sorted_base + r0 + m];
      for (var j = 0u; j < RN; j++) {
        let n = n0 + tx + j * TX;
        if (n < u.N) { slot_out[a * u.N + n] = acc[i * RN + j]; }
      }
    }
  }
}
