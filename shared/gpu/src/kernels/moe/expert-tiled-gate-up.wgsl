// Routed experts, first half, tiled GEMM form (many rows per expert: prefill). Computes the same as
// expert-gemv-gate-up.wgsl: for one row tile (≤ TM sorted rows of expert e) and BN intermediate columns,
//   act[p, n] = silu(x[t_p] · W_gate[e, n, :]) · (x[t_p] · W_up[e, n, :])
// K advances in slabs of BK: the tile's gathered x rows (TM × BK) and both weight slabs (BN × BK, unpacked to
// f32) go to workgroup memory k-major, then each thread accumulates an RM × RN block of gate and of up (rows
// ty + i·TY, columns tx + j·TX) and applies silu·mul in registers. Out-of-range rows, columns and the K tail are
// zero-filled on load and skipped on store. Workgroups past this chunk's tiles exit at once.
//
// Bindings: identical to expert-gemv-gate-up.wgsl:
//   x: array<vec4<f32>>, groups: array<u32>, wgate: array<vec4<u32>>,
//   wup: array<vec4<u32>>, act: array<f32> (read_write),
//   u: uniforms { K, N, topk, x_stride, x_offset, first_expert, expert_count, g_stride, g_offset,
//                             u_stride, u_offset, tile_base, sorted_base }
// Grid: (max tiles of this chunk, ceil(N / BN)). Compile-time (prelude): E, TM, BN, BK, RM, RN, struct F8,
// gate8(i), up8(i), x4(i), silu().

/*@BINDINGS@*/

const TX = BN / RN;
const TY = TM / RM;
const WG = TX * TY;
const XV = TM * BK / 4u;          // vec4 loads of the x slab
const XL = (XV + WG - 1u) / WG;   // per thread
const WV = BN * BK / 8u;          // 8-weight loads of one weight slab
const WL = (WV + WG - 1u) / WG;
var<workgroup> xs: array<f32, BK * TM>;
var<workgroup> gs: array<f32, BK * BN>;
var<workgroup> us: array<f32, BK * BN>;
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

  // the x row each of this thread's load slots reads (fixed across K); 0xffffffff = beyond the tile
  var xr: array<u32, XL>;
  for (var i = 0u; i < XL; i++) {
    let m = (lid + i * WG) / (BK / 4u);
    var base = 0xffffffffu;
    if (m < rows) { base = (groups[u.sorted_base + r0 + m] / u.topk) * u.x_stride + u.x_offset; }
    xr[i] = base;
  }
  let gbase = (e - u.first_expert) * u.g_stride + u.g_offset;
  let ubase = (e - u.first_expert) * u.u_stride + u.u_offset;

  var accg: array<f32, RM * RN>;
  var accu: array<f32, RM * RN>;
  for (var i = 0u; i < RM * RN; i++) { accg[i] = 0.0; accu[i] = 0.0; }

  for (var k0 = 0u; k0 < u.K; k0 += BK) {
    for (var i = 0u; i < XL; i++) {
      let v = lid + i * WG;
      if (v < XV) {
        let m = v / (BK / 4u);
        let kq = (v % (BK / 4u)) * 4u;
        var val = vec4<f32>(0.0);
        if (xr[i] != 0xffffffffu && k0 + kq < u.K) { val = x4(xr[i] + k0 + kq); }
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
        var g = F8(vec4<f32>(0.0), vec4<f32>(0.0));
        var w = F8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (n0 + nn < u.N && k0 + kv < u.K) {
          g = gate8(gbase + (n0 + nn) * u.K + k0 + kv);
          w = up8(ubase + (n0 + nn) * u.K + k0 + kv);
        }
        for (var q = 0u; q < 4u; q++) {
          gs[(kv + q) * BN + nn] = g.lo[q];
          gs[(kv + 4u + q) * BN + nn] = g.hi[q];
          us[(kv + q) * BN + nn] = w.lo[q];
          us[(kv + 4u + q) * BN + nn] = w.hi[q];
        }
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var a: array<f32, RM>;
      var b: array<f32, RN>;
      var c: array<f32, RN>;
      for (var i = 0u; i < RM; i++) { a[i] = xs[kk * TM + ty + i * TY]; }
      for (var j = 0u; j < RN; j++) {
        b[j] = gs[kk * BN + tx + j * TX];
        c[j] = us[kk * BN + tx + j * TX];
      }
      for (var i = 0u; i < RM; i++) {
        for (var j = 0u; j < RN; j++) {
          accg[i * RN + j] = fma(a[i], b[j], accg[i * RN + j]);
          accu[i * RN + j] = fma(a[i], c[j], accu[i * RN + j]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < RM; i++) {
    let m = ty + i * TY;
    for (var j = 0u; j < RN; j++) {
      let n = n0 + tx + j * TX;
      if (m < rows && n < u.N) {
        act[(r0 + m) * u.N + n] = silu(accg[i * RN + j]) * accu[i * RN + j];
      }
    }
  }
}
