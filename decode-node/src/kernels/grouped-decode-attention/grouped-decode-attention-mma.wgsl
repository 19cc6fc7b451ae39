// Grouped absorbed-MLA decode attention on subgroup matrices (tensor cores where the adapter maps them there):
// the same work, grid, outputs and merge as grouped-decode-attention.wgsl, with both products as 16×16×16
// f16 → f32 matrix tiles. One workgroup = 4 subgroups of 32 takes the M = 16 rows of a head group (rows ≥ gc
// hold q = 0 and are never written) of one sequence over one split, BT tokens a tile:
//
//   scores  S[16, BT] = Q[16, r+rope] · Tileᵀ      subgroup sg does k-steps sg, sg+4, ... (split-K), the latent
//                                                   steps and the rope steps in two accumulators, reduced in `sp`
//   softmax online, per head, in f32, base 2 (q is pre-scaled by scale·log2 e)
//   output  O[16, r] += P[16, BT] · Tile[BT, r]    subgroup sg owns the 16-wide column tiles sg, sg+4, ...
//
// The tile is gathered from the pages once and decoded to f16 in workgroup memory (decode16, per dtype):
// bf16/f32 convert, e5m2 is the top byte of an f16, e4m3 is moved bit-wise into an f16 worth value·2^-8 (exact,
// subnormals included); its per-token scale s_t is applied in f32: tok_scale[t] = s_t·256 multiplies the
// latent part of the score after the product, and P·C uses weights p·s_t/s_first (s_first: the split's first
// token), so f16 never holds a scaled value; the output is multiplied by sigma = s_first·256 at the end.
//
// f16 range: P is kept ≤ 2^TAU by a lazy running max: a head's max moves only when a tile's max exceeds it by
// more than TAU; then (rarely) the accumulators are rescaled through workgroup memory. q·scale·log2 e and
// the cache values must fit f16 (|x| < 65504; for e4m3 the decoded codes always do).
//
// Prepended by the launcher (grouped-decode-attention-mma.ts): enables and diagnostics, constants
//   D (= r + rope), R16, KT (k-steps of the latent / of the row), NACC (output tiles per subgroup), KSTR (f16 row
//   stride in workgroup memory, padded), BT, PSTR (P row stride), G, WG, NCH (fetch chunks per thread), R4, K4,
//   PAGE_SIZE and the page layout in words; aliases LeftT, RightT, ResT; bindings
//   0 q: array<f32> [batch, heads, D]   1 seq_lens   2 page_offsets   3 page_table   4.. pool0..poolN-1
//   then o_part: array<f32> [batch, heads, num_splits, r], lse: array<f32> [batch, heads, num_splits], uniforms u;
//   functions fetch_chunk(b, pt0, tok, c) -> vec4<u32> (raw words of values 4c..4c+3), decode16(raw, c) -> vec4<f16>,
//   fetch_scale(b, pt0, tok) -> f32 (the e4m3 per-token scale; 1 for other dtypes).
// Grid: (ceil(heads / G), num_splits, batch).

// All f16 operands live in one array (one base address for scalar and matrix accesses alike):
//   hs[g·KSTR + k]        q·scale·log2 e, row g = head h0 + g (0 for g ≥ gc)
//   hs[KO + t·KSTR + k]   the decoded tile, row t = token t0 + t (0 past the end)
//   hs[PO + g·PSTR + t]   weights p·s_t/s_first [head][token]
const KO: u32 = 16u * KSTR;
const PO: u32 = KO + BT * KSTR;
var<workgroup> hs: array<f16, PO + 16u * PSTR>;
var<workgroup> sp: array<f32, 8 * 256>;          // score partials [2·sg + {0 latent, 1 rope}][16][16]; scratch
var<workgroup> tok_scale: array<f32, BT>;        // s_t·256 (e4m3), else 1
var<workgroup> alph: array<f32, 16>;             // per-head rescale of this tile; at the end sigma / l
var<workgroup> rflag: array<u32, 16>;
// every workgroup variable is a multiple of 16 bytes, so each starts 16-byte aligned whatever order the compiler
// lays them out in (matrix loads from workgroup memory want 16-byte aligned rows)
var<workgroup> resc_any: array<u32, 4>;

const MASKED: f32 = -1.0e30;
const TAU: f32 = 8.0;     // p ≤ 2^TAU between rescales

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let grp = wg.x;
  let split = wg.y;
  let b = wg.z;
  let h0 = grp * G;
  let gc = min(G, u.heads - h0);
  let len = seq_lens[b];
  let chunk = ((len + u.num_splits - 1u) / u.num_splits + BT - 1u) / BT * BT;
  let t_begin = min(len, split * chunk);
  let t_end = min(len, t_begin + chunk);
  let pt0 = page_offsets[b];
  // subgroups are the 4 runs of 32 consecutive invocations (the launcher requires subgroup size 32); matrix
  // offsets derived from sg are uniform per subgroup, which is what the hardware needs (hence the diagnostic off)
  let sg = lid / 32u;
  let hrow = lid / 8u;     // softmax: 8 invocations per head row, BT / 8 tokens each
  let hj = lid % 8u;

  for (var i = lid; i < 16u * D; i += WG) {
    let g = i / D;
    var v = 0.0;
    if (g < gc) { v = q[(b * u.heads + h0) * D + i] * u.scale_log2e; }
    hs[g * KSTR + i % D] = f16(v);
  }
  var sigma = 1.0;
  if (SCALED && t_begin < t_end) { sigma = fetch_scale(b, pt0, t_begin) * 256.0; }
  let inv_sigma = 1.0 / sigma;

  /*@ACC_INIT@*/
  var m_run = MASKED;
  var l_run = 0.0;

  /*@FETCH_FIRST@*/

  for (var t0 = t_begin; t0 < t_end; t0 += BT) {
    workgroupBarrier();   // the previous tile's P·C is done with the tile and the weights
    /*@STORE@*/
    workgroupBarrier();
    /*@FETCH_NEXT@*/

    // scores: latent k-steps into sa, rope k-steps into sb (s_t scales only the latent part)
    // (unrolled by the launcher: k-steps sg, sg+4, ... as straight-line code)
    var sa = ResT();
    var sb = ResT();
    /*@SCORES@*/
    /*@SCORES_STORE@*/
    workgroupBarrier();

    // online softmax of row hrow over the tile (8 invocations per row, reduced by shuffles within 8 lanes)
    /*@SOFTMAX@*/
    workgroupBarrier();
    if (lid == 0u) {
      var flag = 0u;
      for (var h = 0u; h < 16u; h++) { flag |= rflag[h]; }
      resc_any[0] = flag;
    }
    if (workgroupUniformLoad(&resc_any[0]) != 0u) {
      // a row's max moved: acc rows *= alph, two tiles a round through this subgroup's half of sp
      /*@RESCALE@*/
    }

    // P·C: this subgroup's output column tiles
    /*@PV@*/
  }

  workgroupBarrier();
  let S = u.num_splits;
  if (hj == 0u) {
    if (hrow < gc) {
      lse[(b * u.heads + h0 + hrow) * S + split] = select(MASKED, m_run + log2(l_run), l_run > 0.0);
    }
    alph[hrow] = select(0.0, sigma / l_run, l_run > 0.0);
  }
  workgroupBarrier();
  /*@WRITE@*/
}
