// Grouped absorbed-MLA decode attention on subgroup matrices (tensor cores where the adapter maps them there):
// the same work, grid, outputs and merge as grouped-decode-attention.wgsl, with both products as 16×16×16
// f16 → f32 matrix tiles. One workgroup = 8 subgroups of 32 takes the M = 16 rows of a head group (rows ≥ gc
// hold q = 0 and are never written) of one sequence over one split, BT = 32 tokens a tile (16 on request: JT =
// BT / 16 token tiles); with MT = 2 (head groups of 17..32) M = 32 rows, two row tiles sharing every staged cache
// tile (each page decoded once for twice the products):
//
//   scores  S[M, BT] = Q[M, r+rope] · Tileᵀ     subgroup sg < SSG: token tile jt = sg % JT, k-steps kq, kq+KQ, ...
//                                                with kq = (sg / JT) % KQ (split-K, KQ = min(4, 8 / (JT·MT))), row
//                                                tile mt = sg / (JT·KQ); its q tiles stay in registers for the whole
//                                                split; the KQ partials are summed by the softmax
//   softmax online, per head, in f32, base 2 (q is pre-scaled by scale·log2 e), HJ = 256 / M invocations a row
//   output  O[M, r] += P[M, BT] · Tile[BT, r]   subgroup sg owns the 16-wide column tiles sg, sg+8, ... of every
//                                                row tile (each cache tile loaded once for the MT products)
//
// Per tile: 4 barriers (tile free, tile stored, scores stored, weights stored = the rescale flag's uniform
// load). The next tile's raw words are loaded into registers while this one is multiplied: subgroup sg takes
// tokens sg, sg+8, ..., a word a lane along each row (coalesced), first the tokens' page ids, then their
// words (and e4m3 scales), all from token indices clamped into the sequence, so a thread's loads are in flight
// together instead of one page-table round trip after another.
//
// The tile is decoded to f16 in workgroup memory once (put_latent / put_rope, per dtype), neighbouring lanes
// writing neighbouring words (at most 2-way bank conflicts; a lane writing 16 contiguous values made 8-way
// ones, and those scalar stores bounded the whole kernel on the H200): bf16/f32 convert,
// e5m2 is the top byte of an f16, e4m3 is moved bit-wise into an f16 worth code·2^-8 and multiplied by its
// token's scale·256 in f16 (2^-11 relative, well below e4m3's own 2^-4 step), so the scores and P·C need no
// per-token factors. f16 range: P is kept ≤ 2^TAU by a lazy running max (a head's max moves only when a tile's
// max exceeds it by more than TAU; then, rarely, the accumulators are rescaled through workgroup memory);
// q·scale·log2 e and the cache values must fit f16 (|x| < 65504).
//
// Prepended by the launcher (grouped-decode-attention-mma.ts): enables and diagnostics, constants D, RDIM, KT
// (k-steps of a row), R16, KSTR (f16 row stride, padded), BT, PSTR, SPSTR, G, WG, RW (u32 words a row), LW
// (of its latent), LVALS / RVALS (values a latent / rope word), PAGE_SIZE, PAGE_WORDS, SCALES_WORD, MROWS (M),
// JT, KQ, SSG (subgroups computing scores), HJ, SLOTS (256-float slots of sp), HSN (f16 values of hs);
// aliases LeftT, RightT, ResT; bindings 0 q: array<f32> [batch, heads, D]  1 seq_lens  2 page_offsets
// 3 page_table  4.. pools, then o_part: array<f32> [batch, heads, num_splits, RDIM], lse: array<f32>
// [batch, heads, num_splits], uniforms u; functions cw(pool, word) -> u32, put_latent(o, word, scale),
// put_rope(o, word).
// Grid: (ceil(heads / G), num_splits, batch).

// All f16 operands live in one array (one base address for scalar and matrix accesses alike):
//   hs[t·KSTR + k]        the decoded tile, row t = token t0 + t (past the end: the last token's again, weighted 0);
//                         before the loop: q's M rows
//   hs[PO + g·PSTR + t]   weights p [head][token]
const PO: u32 = BT * KSTR;
var<workgroup> hs: array<f16, HSN>;
var<workgroup> sp: array<f32, KQ * MROWS * SPSTR>; // score partials [kq][M][SPSTR]; SLOTS × 256 scratch at the end
var<workgroup> alph: array<f32, MROWS>;             // per-head rescale of this tile; at the end 1 / l
// every workgroup variable is a multiple of 16 bytes, so each starts 16-byte aligned whatever order the compiler
// lays them out in (matrix loads from workgroup memory want 16-byte aligned rows)
var<workgroup> resc: array<u32, 4>;

//!include online-softmax
const TAU: f32 = 8.0;     // p ≤ 2^TAU between rescales

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h0 = wg.x * G;
  let split = wg.y;
  let b = wg.z;
  let gc = min(G, u.heads - h0);
  let len = seq_lens[b];
  let chunk = ((len + u.num_splits - 1u) / u.num_splits + BT - 1u) / BT * BT;
  let t_begin = min(len, split * chunk);
  let t_end = min(len, t_begin + chunk);
  let pt0 = page_offsets[b];
  // subgroups are the 8 runs of 32 consecutive invocations (the launcher requires subgroup size 32); matrix
  // offsets derived from sg are uniform per subgroup, which is what the hardware needs (hence the diagnostic off)
  let sg = lid / 32u;
  let lane = lid % 32u;
  let kq = (sg / JT) % KQ;
  let jt = sg % JT;
  let mt = sg / (JT * KQ);
  let hrow = lid / HJ;
  let hj = lid % HJ;

  // q·scale·log2 e as f16, staged through the tile's memory into this subgroup's registers: a thread's loads all
  // issued before its stores (unrolled by the launcher). (The first tile's page ids and words fetched with q too,
  // before the barrier: the same at batch 1, 0.6% slower at batch 64 on the H100.)
  /*@Q_FETCH@*/
  /*@Q_STORE@*/
  workgroupBarrier();
  /*@Q_LOAD@*/

  /*@ACC_INIT@*/
  var m_run = MASKED;
  var l_run = 0.0;

  if (t_begin < t_end) {
    /*@FETCH_FIRST@*/
  }

  for (var t0 = t_begin; t0 < t_end; t0 += BT) {
    workgroupBarrier();   // q is in registers / the previous tile's P·C is done with the tile and the weights
    if (lid == 0u) { resc[0] = 0u; }
    /*@STORE@*/
    workgroupBarrier();
    if (t0 + BT < t_end) {
      /*@FETCH_NEXT@*/
    }

    // scores: this subgroup's k-steps of its 16 tokens, stored as its partial (unrolled by the launcher; subgroups
    // sg ≥ SSG have none)
    var s = ResT();
    /*@SCORES@*/
    workgroupBarrier();

    // online softmax of row hrow over the tile (HJ invocations a row, reduced by shuffles within HJ lanes)
    /*@SOFTMAX@*/
    if (workgroupUniformLoad(&resc[0]) != 0u) {
      // a row's max moved: acc rows *= alph, one tile a subgroup a round through sp
      /*@RESCALE@*/
    }

    // P·C: this subgroup's output column tiles
    /*@PV@*/
  }

  workgroupBarrier();
  let S = u.num_splits;
  if (hj == 0u) {
    if (hrow < gc) {
      lse[(b * u.heads + h0 + hrow) * S + split] = softmax_lse2(m_run, l_run);
    }
    alph[hrow] = select(0.0, 1.0 / l_run, l_run > 0.0);
  }
  workgroupBarrier();
  /*@WRITE@*/
}
