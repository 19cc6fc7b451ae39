// Grouped, weight-absorbed MLA decode attention over a paged latent KV cache, split over the KV length
// (SGLang's grouped decode_attention_fwd stage 1 / FlashMLA, in f32 on WebGPU). One workgroup takes
// G heads of one sequence over one slice (split) of its tokens:
//
//   score(h, t) = (q_lat[h]·c_t + q_pe[h]·k_pe_t) · scale          (kept in base 2: q is pre-scaled by scale·log2 e)
//   o_split[h]  = Σ_t softmax_t(score) · c_t  over the split's tokens, and lse2 = m + log2(l) of that split
//
// Each tile of BT tokens is gathered from the pages ONCE into workgroup memory, dequantized once (decode_chunk,
// generated per cache dtype by the launcher), and used by all G heads: phase A computes the G×BT scores (a
// small GEMM with split-K over the threads, reduced through `red`), an online softmax per head rescales, and
// phase B accumulates P·C where each thread owns vec4 columns of the r latent dims for all G heads.
//
// Prepended by the launcher (grouped-decode-attention.ts):
//   constants  R4, P4 (latent/rope dims / 4), K4 = R4+P4, KSTR (K4 padded odd: vec4 row stride in workgroup
//              memory, so rows hit different banks), G (heads per group), GP (G rounded up to 4), GP4 = GP/4,
//              BT (tokens per tile), WG (threads), AH×AT (phase A register tile: heads × tokens), NTT = BT/AT,
//              TILES = (GP/AH)·NTT, KS = WG/TILES (split-K slices), HS (phase B head slices: a thread's item is
//              one vec4 column of GPH = GP/HS heads), PAGE_SIZE, and the page layout in words
//   bindings   0 q: array<vec4<f32>> [batch, heads, K4]   (q_lat ‖ q_pe per head)
//              1 seq_lens: array<u32> [batch]   2 page_offsets: array<u32> [batch]   3 page_table: array<u32>
//              4.. pool0..poolN-1: array<u32> (cache pages, layout of shared/src/kv/latent-layout.ts)
//              then o_part: array<vec4<f32>> [batch, heads, num_splits, R4] (normalized per split),
//              lse: array<f32> [batch, heads, num_splits] (base 2), and the uniforms u
//   functions  fetch_chunk(b, pt0, tok, c) -> vec4<u32>: raw words of values 4c..4c+3 of token tok's row
//              (latent ‖ rope); decode_chunk(raw, c) -> vec4<f32>: the values (the per-dtype dequantize step)
//
// Workgroup grid: (ceil(heads / G), num_splits, batch); head group fastest so the groups sharing a tile
// read it from L2 at about the same time.

var<workgroup> qs: array<vec4<f32>, GP * KSTR>;   // qs[g*KSTR + k4]: q of head g · scale·log2 e (heads ≥ gc stay 0)
var<workgroup> kvs: array<vec4<f32>, BT * KSTR>;  // kvs[t*KSTR + k4]: dequantized row t of the tile (0 past the end)
var<workgroup> red: array<f32, KS * BT * GP>;     // phase A partial scores: red[(s*BT + t)*GP + g]
var<workgroup> ps: array<vec4<f32>, BT * GP4>;    // scores, then probabilities: ps[t*GP4 + g/4][g%4]
var<workgroup> alph: array<vec4<f32>, GP4>;       // per-head rescale of this tile; at the end 1/l

//!include online-softmax

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let grp = wg.x;
  let split = wg.y;
  let b = wg.z;
  let h0 = grp * G;
  let gc = min(G, u.heads - h0);   // heads of this group that exist (the last group may be partial)
  let len = seq_lens[b];
  // every split but the last covers `chunk` tokens, a multiple of BT so tiles never straddle splits
  let chunk = ((len + u.num_splits - 1u) / u.num_splits + BT - 1u) / BT * BT;
  let t_begin = min(len, split * chunk);
  let t_end = min(len, t_begin + chunk);
  let pt0 = page_offsets[b];

  for (var i = lid; i < G * K4; i += WG) {
    let g = i / K4;
    if (g < gc) {
      qs[g * KSTR + i % K4] = q[(b * u.heads + h0) * K4 + i] * u.scale_log2e;
    }
  }

  // acc_<k>_<m>: phase B item k of this thread (a vec4 column, GPH heads), head m of it; raw_<k>: fetched chunks
  /*@ACC_INIT@*/
  var m_run = MASKED;   // running max and sum of head `lid` (threads lid < GP)
  var l_run = 0.0;

  // phase A: this thread's AH heads × AT tokens, over the k4 slice ks, ks+KS, ...
  let tile = lid % TILES;
  let ks = lid / TILES;
  let ag0 = (tile / NTT) * AH;
  let at0 = (tile % NTT) * AT;

  // the tile's chunks i = lid + k·WG (token i / K4, chunk i % K4) are fetched into raw_<k> one tile ahead
  /*@FETCH_FIRST@*/

  for (var t0 = t_begin; t0 < t_end; t0 += BT) {
    workgroupBarrier();   // the previous tile's phase B is done with kvs and ps
    /*@STORE@*/
    workgroupBarrier();
    /*@FETCH_NEXT@*/

    // phase A (generated): s_<i>_<j> = Σ_k4 qs[ag0 + i]·kvs[at0 + j] over this thread's slice, into red
    if (ks < KS) {
      /*@PHASE_A@*/
    }
    workgroupBarrier();

    for (var i = lid; i < BT * GP; i += WG) {
      let t = i / GP;
      var sum = 0.0;
      for (var s = 0u; s < KS; s++) { sum += red[s * BT * GP + i]; }
      ps[i / 4u][i % 4u] = select(MASKED, sum, t0 + t < t_end);
    }
    workgroupBarrier();

    if (lid < GP) {
      var mx = m_run;
      for (var t = 0u; t < BT; t++) { mx = max(mx, ps[t * GP4 + lid / 4u][lid % 4u]); }
      let alpha = exp2(m_run - mx);
      var sum = 0.0;
      for (var t = 0u; t < BT; t++) {
        let x = ps[t * GP4 + lid / 4u][lid % 4u];
        let p = select(0.0, exp2(x - mx), t0 + t < t_end);
        ps[t * GP4 + lid / 4u][lid % 4u] = p;
        sum += p;
      }
      l_run = l_run * alpha + sum;
      m_run = mx;
      alph[lid / 4u][lid % 4u] = alpha;
    }
    workgroupBarrier();

    // phase B (generated, unrolled over tokens and heads): acc[h] = acc[h]·alpha[h] + Σ_t p[t, h]·c_t for this
    // thread's items: i = lid + k·WG < R4·HS, vec4 column c = i % R4 of heads (i / R4)·GPH ..+ GPH
    /*@PHASE_B@*/
  }

  workgroupBarrier();
  let S = u.num_splits;
  if (lid < gc) {
    let row = (b * u.heads + h0 + lid) * S + split;
    lse[row] = softmax_lse2(m_run, l_run);
  }
  if (lid < GP) { alph[lid / 4u][lid % 4u] = select(0.0, 1.0 / l_run, l_run > 0.0); }
  workgroupBarrier();
  // o_part[b, h0 + g, split, c] = acc / l[g] for the heads that exist (generated)
  /*@WRITE@*/
}
