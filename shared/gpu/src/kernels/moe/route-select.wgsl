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
// Bindings, in order (numbered by the launcher):
//   logits:  array<f32>, read        [tokens, E]
//   ids:     array<u32>, read_write  [tokens, SLOTS] chosen experts, then the shared ones (E, E + 1, ...)
//   weights: array<f32>, read_write  [tokens, SLOTS] their multipliers (scaling factor included; shared: 1)
//   bias:    array<u32>, read        METHOD 2 only: e_score_correction_bias [E], read via bias_at
//   u:     uniforms { tokens, scale }
// Compile-time constants (prelude): E, K, SHARED (shared experts routed with the others: each token's last
// SHARED slots, experts E.., weight 1), SLOTS (K + SHARED), WG (threads), METHOD, GROUPED (bool: group masking
// needed), N_GROUP, PER_GROUP (= E / N_GROUP), TOPK_GROUP, NORMALIZE (bool).

// The launcher declares the bindings and the entry point (which calls route_token), so select-group.wgsl can
// run it over its own bindings (in the select+group and route-fused kernels).

// below every score (scores are finite: softmax >= 0, sigmoid + bias)
const NEG_BIG = -3.0e38;

var<workgroup> lg: array<f32, E>;      // the token's logits
var<workgroup> score: array<f32, E>;   // softmax or sigmoid of the logits
var<workgroup> cand: array<f32, E>;    // values top-k is taken over (biased and/or group-masked)
var<workgroup> gscore: array<f32, N_GROUP>;
var<workgroup> keep: array<u32, N_GROUP>;
var<workgroup> pick_id: array<u32, K>;
var<workgroup> pick_w: array<f32, K>;

// (v, i) ranks before (bv, bi): larger value, or equal value and lower index (a strict total order)
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return v > bv || (v == bv && i < bi);
}

// Selection is by rank, not by k rounds of argmax: an expert's rank is the number of experts that beat it, and
// the experts of rank < K are the top-k in order. Every thread counts over all E values in workgroup memory,
// so the whole routing needs a handful of barriers. Sums (softmax, normalization) are taken by every thread in
// the same order, so they agree bitwise without a reduction tree.
fn route_token(t: u32, lid: u32) {
  if (t >= u.tokens) { return; }
  for (var e = lid; e < E; e += WG) { lg[e] = logits[t * E + e]; }
  workgroupBarrier();

  // ---- scoring ----
  if (METHOD == 2u) {
    for (var e = lid; e < E; e += WG) {
      let s = 1.0 / (1.0 + exp(-lg[e]));
      score[e] = s;
      cand[e] = s + bias_at(e);
    }
  } else {
    // the max and the sum are walked by the invocations that own an expert only (the others' loops over e are
    // empty): fewer reads of workgroup memory where the workgroup is wider than E
    var mx = 0.0;
    if (lid < E) {
      mx = lg[0];
      for (var i = 1u; i < E; i++) { mx = max(mx, lg[i]); }
    }
    for (var e = lid; e < E; e += WG) { score[e] = exp(lg[e] - mx); }
    workgroupBarrier();
    var total = 0.0;
    if (lid < E) {
      for (var i = 0u; i < E; i++) { total += score[i]; }
    }
    workgroupBarrier();
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
    }
    workgroupBarrier();
    for (var g = lid; g < N_GROUP; g += WG) {
      var rank = 0u;
      for (var h = 0u; h < N_GROUP; h++) { rank += select(0u, 1u, better(gscore[h], h, gscore[g], g)); }
      keep[g] = select(0u, 1u, rank < TOPK_GROUP);
    }
    workgroupBarrier();
    for (var e = lid; e < E; e += WG) {
      if (keep[e / PER_GROUP] == 0u) { cand[e] = 0.0; }
    }
    workgroupBarrier();
  }

  // ---- top-k by rank ----
  for (var e = lid; e < E; e += WG) {
    let v = cand[e];
    var rank = 0u;
    for (var i = 0u; i < E; i++) { rank += select(0u, 1u, better(cand[i], i, v, e)); }
    if (rank < K) {
      pick_id[rank] = e;
      // V2 weights are the (group-masked) softmax values top-k returned; V3 gathers the unbiased sigmoid scores
      pick_w[rank] = select(v, score[e], METHOD == 2u);
    }
  }
  workgroupBarrier();

  // ---- weights ----
  for (var j = lid; j < K; j += WG) {
    var w = pick_w[j];
    if (NORMALIZE) {
      var sum = 0.0;
      for (var i = 0u; i < K; i++) { sum += pick_w[i]; }
      w = w / (sum + 1e-20);
    }
    ids[t * SLOTS + j] = pick_id[j];
    weights[t * SLOTS + j] = w * u.scale;
  }
  for (var j = lid; j < SHARED; j += WG) {
    ids[t * SLOTS + K + j] = E + j;
    weights[t * SLOTS + K + j] = 1.0;
  }
}
