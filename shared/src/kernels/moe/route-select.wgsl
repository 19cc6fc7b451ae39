// MoE routing from router logits, one workgroup per token: scoring, group-limited selection, top-k, weights.
// Mirrors transformers 5 (DeepseekV2Moe.route_tokens_to_experts / DeepseekV3MoE.route_tokens_to_experts):
//   METHOD 0 greedy (V2):               s = softmax(l); pick top-k of s; w = s[pick] · scale
//   METHOD 1 group_limited_greedy (V2): s = softmax(l); group score = max of s in the group; keep the TOPK_GROUP
//                                       best groups, other experts' s set to 0.0; top-k; w = masked s · scale
//   METHOD 2 noaux_tc (V3):             s = sigmoid(l); c = s + bias; group score = sum of the 2 largest c in the
//                                       group; keep TOPK_GROUP groups, others' c set to 0.0; top-k of c;
//                                       w = s[pick] (unbiased); NORMALIZE: w /= (Σw + 1e-20); then w · scale
// Ties (equal values) go to the lower expert / group index. Outputs are sorted best first.
//
// Bindings:
//   @binding(0) logits:  array<f32>, read        [tokens, E]
//   @binding(1) ids:     array<u32>, read_write  [tokens, K] chosen experts
//   @binding(2) weights: array<f32>, read_write  [tokens, K] their multipliers (scaling factor included)
//   @binding(3) bias:    array<u32>, read        METHOD 2 only: e_score_correction_bias [E], read via bias_at
//   @binding(3|4) u:     uniforms { tokens, scale }
// Compile-time constants (prelude): E, K, WG (threads, a power of two), METHOD, GROUPED (bool: group masking
// needed), N_GROUP, PER_GROUP (= E / N_GROUP), TOPK_GROUP, NORMALIZE (bool).

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;

var<workgroup> score: array<f32, E>;   // softmax or sigmoid of the logits
var<workgroup> cand: array<f32, E>;    // values top-k is taken over (biased and/or group-masked)
var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
var<workgroup> gscore: array<f32, N_GROUP>;
var<workgroup> keep: array<u32, N_GROUP>;
var<workgroup> pick_id: array<u32, K>;
var<workgroup> pick_v: array<f32, K>;

// below every score (scores are finite: softmax ≥ 0, sigmoid + bias); marks taken experts
const NEG_BIG = -3.0e38;

// (v, i) ranks before (bv, bi): larger value, or equal value and lower index
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = wg.x + wg.y * nwg.x;
  if (t >= u.tokens) { return; }
  let lbase = t * E;

  // ---- scoring ----
  if (METHOD == 2u) {
    for (var e = lid; e < E; e += WG) {
      let s = 1.0 / (1.0 + exp(-logits[lbase + e]));
      score[e] = s;
      cand[e] = s + bias_at(e);
    }
  } else {
    var m = NEG_BIG;
    for (var e = lid; e < E; e += WG) { m = max(m, logits[lbase + e]); }
    red_v[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s) { red_v[lid] = max(red_v[lid], red_v[lid + s]); }
      workgroupBarrier();
    }
    let mx = red_v[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var e = lid; e < E; e += WG) {
      let p = exp(logits[lbase + e] - mx);
      score[e] = p;
      sum += p;
    }
    red_v[lid] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s) { red_v[lid] += red_v[lid + s]; }
      workgroupBarrier();
    }
    let total = red_v[0];
    for (var e = lid; e < E; e += WG) {
      let p = score[e] / total;
      score[e] = p;
      cand[e] = p;
    }
  }
  workgroupBarrier();

  // ---- group-limited selection: zero the candidates outside the TOPK_GROUP best groups ----
  if (GROUPED) {
    for (var g = lid; g < N_GROUP; g += WG) {
      var m1 = NEG_BIG;
      var m2 = NEG_BIG;
      for (var j = 0u; j < PER_GROUP; j++) {
        let v = cand[g * PER_GROUP + j];
        if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) { m2 = v; }
      }
      gscore[g] = select(m1, m1 + m2, METHOD == 2u);
      keep[g] = 0u;
    }
    workgroupBarrier();
    if (lid == 0u) {
      for (var n = 0u; n < TOPK_GROUP; n++) {
        var bv = NEG_BIG;
        var bi = 0xffffffffu;
        for (var g = 0u; g < N_GROUP; g++) {
          if (keep[g] == 0u && better(gscore[g], g, bv, bi)) { bv = gscore[g]; bi = g; }
        }
        keep[bi] = 1u;
      }
    }
    workgroupBarrier();
    for (var e = lid; e < E; e += WG) {
      if (keep[e / PER_GROUP] == 0u) { cand[e] = 0.0; }
    }
    workgroupBarrier();
  }

  // ---- top-k: K rounds of a workgroup argmax; a taken candidate becomes NEG_BIG ----
  for (var j = 0u; j < K; j++) {
    var bv = NEG_BIG;
    var bi = 0xffffffffu;
    for (var e = lid; e < E; e += WG) {
      if (better(cand[e], e, bv, bi)) { bv = cand[e]; bi = e; }
    }
    red_v[lid] = bv;
    red_i[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s && better(red_v[lid + s], red_i[lid + s], red_v[lid], red_i[lid])) {
        red_v[lid] = red_v[lid + s];
        red_i[lid] = red_i[lid + s];
      }
      workgroupBarrier();
    }
    if (lid == 0u) {
      let e = red_i[0];
      pick_id[j] = e;
      pick_v[j] = red_v[0];
      cand[e] = NEG_BIG;
    }
    workgroupBarrier();
  }

  // ---- weights ----
  if (lid == 0u) {
    var w: array<f32, K>;
    var sum = 0.0;
    for (var j = 0u; j < K; j++) {
      // V2 weights are the (group-masked) softmax values top-k returned; V3 gathers the unbiased sigmoid scores
      w[j] = select(pick_v[j], score[pick_id[j]], METHOD == 2u);
      sum += w[j];
    }
    let den = sum + 1e-20;
    for (var j = 0u; j < K; j++) {
      ids[t * K + j] = pick_id[j];
      weights[t * K + j] = select(w[j], w[j] / den, NORMALIZE) * u.scale;
    }
  }
}
