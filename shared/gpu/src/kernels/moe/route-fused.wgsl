// MoE routing of a few tokens (the decode step's batch) in one workgroup, the work of four dispatches:
//   1. xn = RMSNorm(x)·w (post_attention_layernorm), written out for the experts, as rms-norm.ts computes it
//      (the rms-rows piece: 128 lanes of partial sums, tree-summed in the same order, then x·inv·w)
//   2. router logits = xn · W_gateᵀ, as route-logits.wgsl sums them (LANES lanes per expert, fma along hidden,
//      the lanes tree-summed in the same order)
//   3. selection per token: route-select.wgsl's route_token
//   4. grouping of the (token, slot) assignments by expert: group.wgsl's group_assignments
// (3 and 4 as select-group.wgsl's select_and_group)
// so its outputs are those of the four kernels, bit for bit. Tokens must be at most MAX_T.
//
// Bindings (declared by the launcher, moe-route-fused.ts):
//   x:       array<f32>, read        the residual stream, row t at t*x_stride + x_offset
//   w:       array<u32>, read        W_gate [E, hidden] (weight_at)
//   norm_w:  array<u32>, read        the norm's weight [hidden] (norm_at)
//   xn:      array<f32>, read_write  [tokens, hidden] the normed rows
//   logits:  array<f32>, read_write  [tokens, E]
//   ids:     array<u32>, read_write  [tokens, K]
//   weights: array<f32>, read_write  [tokens, K]
//   groups:  array<u32>, read_write  group.wgsl's layout
//   bias:    noaux_tc only
//   u: { tokens, hidden, x_stride, x_offset, eps, scale, assignments, tile_base, sorted_base }
// Compile-time (prelude): route-select's constants (E, K, WG, ...), TM, MAX_T, LANES, PPT
// (expert lanes per thread per round), then route-select.wgsl, group.wgsl and select-group.wgsl follow this file.

const CHUNK = WG * PPT / LANES; // experts per round of the logits
const RMS_ROWS = MAX_T;
const RMS_WG = WG;
fn rms_x(t: u32, c: u32) -> f32 { return x[t * u.x_stride + u.x_offset + c]; }
//!include rms-rows
var<workgroup> lred: array<f32, WG * PPT>;

fn norm_rows(lid: u32) {
  rms_rows(lid, u.tokens, u.hidden, u.eps);
  for (var i = lid; i < u.tokens * u.hidden; i += WG) {
    let t = i / u.hidden;
    let c = i % u.hidden;
    xn[i] = x[t * u.x_stride + u.x_offset + c] * rms_inv[t] * norm_at(c);
  }
  storageBarrier();
  workgroupBarrier();
}

fn route_logits(lid: u32) {
  for (var e0 = 0u; e0 < E; e0 += CHUNK) {
    var acc: array<f32, PPT * MAX_T>;
    for (var i = 0u; i < PPT * MAX_T; i++) { acc[i] = 0.0; }
    for (var p = 0u; p < PPT; p++) {
      let pair = lid + p * WG;
      let e = e0 + pair / LANES;
      if (e < E) {
        let wbase = e * u.hidden;
        for (var h = pair % LANES; h < u.hidden; h += LANES) {
          let wv = weight_at(wbase + h);
          for (var t = 0u; t < MAX_T; t++) {
            if (t < u.tokens) { acc[p * MAX_T + t] = fma(wv, xn[t * u.hidden + h], acc[p * MAX_T + t]); }
          }
        }
      }
    }
    for (var t = 0u; t < u.tokens; t++) {
      for (var p = 0u; p < PPT; p++) { lred[lid + p * WG] = acc[p * MAX_T + t]; }
      workgroupBarrier();
      for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        for (var p = 0u; p < PPT; p++) {
          let pair = lid + p * WG;
          if (pair % LANES < s) { lred[pair] += lred[pair + s]; }
        }
        workgroupBarrier();
      }
      for (var p = 0u; p < PPT; p++) {
        let pair = lid + p * WG;
        let e = e0 + pair / LANES;
        if (pair % LANES == 0u && e < E) { logits[t * E + e] = lred[pair]; }
      }
      workgroupBarrier();
    }
  }
  storageBarrier();
  workgroupBarrier();
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  norm_rows(lid);
  route_logits(lid);
  select_and_group(lid);
}
