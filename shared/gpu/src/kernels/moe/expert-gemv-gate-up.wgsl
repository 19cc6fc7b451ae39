// Routed experts, first half, GEMV form (few rows per expert: decode and small batches). For one row tile of
// one expert (≤ TM sorted rows, see group.wgsl) and COLS consecutive intermediate columns n:
//   act[p, n] = silu(x[t_p] · W_gate[e, n, :]) · (x[t_p] · W_up[e, n, :])
// for every sorted row p of the tile, where t_p is the token of the assignment stored at row p. Each weight
// row is read once per tile with 16-byte loads by LANES threads walking K; rows beyond the tile's count are
// skipped (workgroup-uniform branch), partial sums are tree-reduced over the lanes (REDUCE, by the launcher:
// in workgroup memory, or by subgroup shuffles in the same order where a subgroup holds whole runs of LANES).
// Workgroups whose tile index lies outside this chunk's experts exit at once, so the weights of experts with no
// tokens are never read.
//
// Bindings, in order (numbered by the launcher):
//   x:     array<vec4<f32>>, read        hidden states; row t at t*x_stride + x_offset (elements)
//   groups:  array<u32>, read              grouping output (group.wgsl)
//   wgate: array<vec4<u32>>, read        gate weights of experts [first_expert, +expert_count):
//                                                    expert e, row n at (e - first_expert)*g_stride + g_offset + n*K
//   wup:   array<vec4<u32>>, read        up weights, likewise with u_stride / u_offset (may be the
//                                                    same buffer as wgate: fused gate_up [E, 2I, H])
//   act:   array<f32>, read_write        [sorted rows, N]
//   u:     uniforms { K, N, topk, x_stride, x_offset, first_expert, expert_count, g_stride, g_offset,
//                                 u_stride, u_offset, tile_base, sorted_base }
// Grid: (max tiles of this chunk, ceil(N / COLS)). Compile-time (prelude): E, TM, COLS, LANES, U, struct F8,
// gate8(i) / up8(i) (8 weights from element i, a multiple of 8), x8(i), silu().

/*@BINDINGS@*/

const WG = COLS * LANES;
const OUTS = COLS * TM * 2u;
const STEP = LANES * 8u;  // K advance of one step of all lanes
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
  let gb = (e - u.first_expert) * u.g_stride + u.g_offset + n * u.K;
  let ub = (e - u.first_expert) * u.u_stride + u.u_offset + n * u.K;
  var xrow: array<u32, TM>;
  var ag: array<vec4<f32>, TM>;
  var au: array<vec4<f32>, TM>;
  for (var r = 0u; r < TM; r++) {
    let a = groups[u.sorted_base + r0 + min(r, rows - 1u)];
    xrow[r] = (a / u.topk) * u.x_stride + u.x_offset;
    ag[r] = vec4<f32>(0.0);
    au[r] = vec4<f32>(0.0);
  }
  // U steps of the K walk issued back to back (more loads in flight), then the tail one step at a time
  var k = lane * 8u;
  for (; k + (U - 1u) * STEP < u.K; k += U * STEP) {
    var g: array<F8, U>;
    var w: array<F8, U>;
    for (var q = 0u; q < U; q++) {
      g[q] = gate8(gb + k + q * STEP);
      w[q] = up8(ub + k + q * STEP);
    }
    for (var r = 0u; r < TM; r++) {
      if (r < rows) {
        for (var q = 0u; q < U; q++) {
          let xv = x8(xrow[r] + k + q * STEP);
          ag[r] = fma(xv.lo, g[q].lo, fma(xv.hi, g[q].hi, ag[r]));
          au[r] = fma(xv.lo, w[q].lo, fma(xv.hi, w[q].hi, au[r]));
        }
      }
    }
  }
  for (; k < u.K; k += STEP) {
    let g = gate8(gb + k);
    let w = up8(ub + k);
    for (var r = 0u; r < TM; r++) {
      if (r < rows) {
        let xv = x8(xrow[r] + k);
        ag[r] = fma(xv.lo, g.lo, fma(xv.hi, g.hi, ag[r]));
        au[r] = fma(xv.lo, w.lo, fma(xv.hi, w.hi, au[r]));
      }
    }
  }
  /*@REDUCE@*/
}
