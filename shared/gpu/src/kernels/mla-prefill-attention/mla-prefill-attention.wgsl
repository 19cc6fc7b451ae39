// MLA prefill attention, naive order (DeepseekV2Attention as transformers runs it), FlashAttention-style:
// one workgroup per (query tile of BQ rows, head); key tiles of BK keys are staged in workgroup memory and
// folded into the output with an online softmax (running max and sum per row), so no T×T matrix exists.
//
//   keys   k[s] = [ kv[s, h, 0:NOPE] | latent[s, KPE_OFFSET : KPE_OFFSET + ROPE] ]   (k_pe shared by all heads)
//   values v[s] =   kv[s, h, NOPE : NOPE + DV]
//   out[i, h, :] = softmax_s( q[i, h, :]·k[s] · scale ) · v[s]   over keys s <= q_pos0 + i and s < kv_len
//
// Bindings (group 0):
//   0  q       array<f32>  read        [q_len rows; row i, head h at i*q_row_stride + h*q_head_stride]: q_nope | q_pe (roped)
//   1  kv      array<f32>  read        kv_b_proj(c): row s, head h at s*kv_row_stride + h*kv_head_stride: k_nope | v
//   2  latent  array<f32>  read        latent rows: row s at s*lat_row_stride; roped k_pe at column kpe_offset
//   3  out     array<f32>  read_write  row i, head h at i*out_row_stride + h*out_head_stride: DV values
//   4  u       Uniforms (declared with the bindings by the launcher):
//        q_len          query rows in this dispatch
//        kv_len         key rows readable in kv/latent (keys at or past it are never read)
//        q_pos0         position of query row 0 = number of earlier keys (0 for a whole-prompt prefill); row i sees
//                       keys 0 ..= q_pos0 + i (chunked prefill: a chunk attends to the prefix and causally to itself)
//        scale_log2e    softmax scale (1/sqrt(NOPE+ROPE) · mscale²) times log2(e): scores are kept in base 2
//        q_row_stride, q_head_stride, kv_row_stride, kv_head_stride, lat_row_stride, kpe_offset,
//        out_row_stride, out_head_stride   (elements)
//
// Compile-time constants (prepended by the launcher): NOPE, ROPE, DQK = NOPE+ROPE, DV, and the tiling:
//   BQ query rows per workgroup (multiple of 4), BK keys per tile, NT threads, BQ4 = BQ/4 row groups,
//   CG = NT/BQ4 threads per row group (BK is a multiple of CG), TK = BK/CG keys per thread,
//   TD = ceil(DV/CG) output dims per thread, DVP = TD*CG, BKP = BK+1 (padded stride of the transposed K tile),
//   KV_WORDS = max(DQK*BKP, BK*DVP), KL = ceil(BK*DQK/NT), VL = ceil(BK*DVP/NT) (per-thread prefetch registers),
//   QL = ceil(BQ*DQK/NT).
//
// Thread lid owns query rows 4g..4g+3 (g = lid / CG) as one vec4, and within them the keys cg + c*CG (scores)
// and the output dims cg + c*CG (accumulators), cg = lid % CG: adjacent threads read adjacent words of the
// K and V tiles (no bank conflicts) and the same vec4 of Q / P (a broadcast).
//
// Workgroup memory, in f32 words: DQK*BQ (Q tile) + KV_WORDS (K tile, then V tile) + 2*BK*BQ (scores, probs).

var<workgroup> qs: array<vec4<f32>, DQK * BQ4>;  // qs[d*BQ4 + g][r] = q[row 4g+r, dim d] · scale·log2(e)
var<workgroup> kvs: array<f32, KV_WORDS>;        // K tile transposed: kvs[d*BKP + j]; then V tile: kvs[j*DVP + e]
var<workgroup> ss: array<vec4<f32>, BK * BQ4>;   // masked scores: ss[j*BQ4 + g][r]
var<workgroup> ps: array<vec4<f32>, BK * BQ4>;   // probabilities (unnormalized), same layout

//!include online-softmax

// This thread's elements of the K tile at keys k0..k0+BK (element e = lid + i*NT is key e / DQK, dim e % DQK);
// keys at or past key_end read as 0.
fn load_k(dst: ptr<function, array<f32, KL>>, k0: u32, h: u32, key_end: u32, lid: u32) {
  for (var i = 0u; i < KL; i++) {
    let e = lid + i * NT;
    let key = k0 + e / DQK;
    let d = e % DQK;
    var x = 0.0;
    if (e < BK * DQK && key < key_end) {
      if (d < NOPE) {
        x = kv[key * u.kv_row_stride + h * u.kv_head_stride + d];
      } else {
        x = latent[key * u.lat_row_stride + u.kpe_offset + (d - NOPE)];
      }
    }
    (*dst)[i] = x;
  }
}

// This thread's elements of the V tile (element e = lid + i*NT is key e / DVP, dim e % DVP; dims past DV are 0).
fn load_v(dst: ptr<function, array<f32, VL>>, k0: u32, h: u32, key_end: u32, lid: u32) {
  for (var i = 0u; i < VL; i++) {
    let e = lid + i * NT;
    let key = k0 + e / DVP;
    let d = e % DVP;
    var x = 0.0;
    if (e < BK * DVP && key < key_end && d < DV) {
      x = kv[key * u.kv_row_stride + h * u.kv_head_stride + NOPE + d];
    }
    (*dst)[i] = x;
  }
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // The last query tiles see the most keys: dispatch them first so the short ones fill the tail.
  let q0 = ((u.q_len + BQ - 1u) / BQ - 1u - wg.x) * BQ;
  let h = wg.y;
  let g = lid / CG;
  let cg = lid % CG;

  // Constant trip counts (QL = ceil(BQ*DQK/NT)) let the compiler issue all of this thread's Q loads at once.
  for (var i = 0u; i < QL; i++) {
    let e = lid + i * NT;
    let row = e / DQK;
    let d = e % DQK;
    if (e < BQ * DQK) {
      var x = 0.0;
      if (q0 + row < u.q_len) {
        x = q[(q0 + row) * u.q_row_stride + h * u.q_head_stride + d] * u.scale_log2e;
      }
      qs[d * BQ4 + row / 4u][row % 4u] = x;
    }
  }

  // Keys this tile needs: up to the last row's position, within kv_len.
  let last_row = min(q0 + BQ, u.q_len) - 1u;
  let key_end = min(u.kv_len, u.q_pos0 + last_row + 1u);
  let n_tiles = (key_end + BK - 1u) / BK;
  let row_pos = vec4<u32>(u.q_pos0 + q0 + 4u * g) + vec4<u32>(0u, 1u, 2u, 3u);

  var m = vec4<f32>(MASKED);  // running max per row (base 2)
  var l = vec4<f32>(0.0);     // running sum per row, over this thread's keys only (all threads share m)
  var acc: array<vec4<f32>, TD>;
  for (var c = 0u; c < TD; c++) { acc[c] = vec4<f32>(0.0); }

  // The next tile's K and V wait in registers: they are loaded while the current tile computes, so the global
  // loads' latency hides behind the score and output math (KL, VL = this thread's share of a K / V tile).
  var k_next: array<f32, KL>;
  var v_next: array<f32, VL>;
  load_k(&k_next, 0u, h, key_end, lid);
  load_v(&v_next, 0u, h, key_end, lid);

  for (var t = 0u; t < n_tiles; t++) {
    let k0 = t * BK;
    workgroupBarrier(); // the previous tile's V and P reads are done (and, the first time, Q is staged)
    for (var i = 0u; i < KL; i++) {
      let e = lid + i * NT;
      if (e < BK * DQK) { kvs[(e % DQK) * BKP + e / DQK] = k_next[i]; }
    }
    workgroupBarrier();
    load_k(&k_next, k0 + BK, h, key_end, lid);

    var s: array<vec4<f32>, TK>;
    for (var c = 0u; c < TK; c++) { s[c] = vec4<f32>(0.0); }
    for (var d = 0u; d < DQK; d++) {
      let qv = qs[d * BQ4 + g];
      for (var c = 0u; c < TK; c++) {
        s[c] += qv * kvs[d * BKP + cg + c * CG];
      }
    }
    for (var c = 0u; c < TK; c++) {
      let key = k0 + cg + c * CG;
      let valid = (vec4<u32>(key) <= row_pos) & vec4<bool>(key < key_end);
      s[c] = select(vec4<f32>(MASKED), s[c], valid);
      ss[(cg + c * CG) * BQ4 + g] = s[c];
    }
    workgroupBarrier(); // scores visible; K tile no longer read

    for (var i = 0u; i < VL; i++) {
      let e = lid + i * NT;
      if (e < BK * DVP) { kvs[e] = v_next[i]; }
    }
    load_v(&v_next, k0 + BK, h, key_end, lid);
    var tile_max = vec4<f32>(MASKED);
    for (var j = 0u; j < BK; j++) {
      tile_max = max(tile_max, ss[j * BQ4 + g]);
    }
    let m_new = max(m, tile_max);
    let alpha = exp2(m - m_new);
    m = m_new;
    l *= alpha;
    for (var c = 0u; c < TK; c++) {
      let p = select(vec4<f32>(0.0), exp2(s[c] - m_new), s[c] > vec4<f32>(0.5 * MASKED));
      l += p;
      ps[(cg + c * CG) * BQ4 + g] = p;
    }
    for (var c = 0u; c < TD; c++) { acc[c] *= alpha; }
    workgroupBarrier(); // V tile and probabilities visible

    for (var j = 0u; j < BK; j++) {
      let pv = ps[j * BQ4 + g];
      for (var c = 0u; c < TD; c++) {
        acc[c] += pv * kvs[j * DVP + cg + c * CG];
      }
    }
  }

  // Row sums: each of the CG threads of a row group summed its own keys. ss is last read before the loop's final
  // barrier, so it is free to reuse (BK >= CG entries per row group).
  ss[cg * BQ4 + g] = l;
  workgroupBarrier();
  var total = vec4<f32>(0.0);
  for (var c = 0u; c < CG; c++) { total += ss[c * BQ4 + g]; }
  let inv = select(vec4<f32>(0.0), 1.0 / total, total > vec4<f32>(0.0));

  for (var r = 0u; r < 4u; r++) {
    let row = q0 + 4u * g + r;
    if (row < u.q_len) {
      let base = row * u.out_row_stride + h * u.out_head_stride;
      for (var c = 0u; c < TD; c++) {
        let d = cg + c * CG;
        if (d < DV) { out[base + d] = acc[c][r] * inv[r]; }
      }
    }
  }
}
