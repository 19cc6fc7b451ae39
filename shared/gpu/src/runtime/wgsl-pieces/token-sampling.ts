// The sampler's steps after its first pass, shared by the one-workgroup sampler (sample.wgsl) and the one spread
// over a row's chunks (sample-search.wgsl, sample-draw.wgsl): the weights of the kept tokens, the 16-way
// threshold search over the logits' keys, and the inverse-CDF draw in token order. Both need logit-extremes
// (sanitize, key_of, NONE); the includer declares `logits: array<u32>` and `const WG: u32`, and for the draw
// `var<workgroup> red_f: array<f32, N>` with N >= WG.
/** The spread sampler's chunk: the logits one workgroup of the row-stats pass, the search and the draw walks. */
const SAMPLE_CHUNK_THREADS = 256;
const SAMPLE_CHUNK_ITEMS = 8;
export const SAMPLE_CHUNK = SAMPLE_CHUNK_THREADS * SAMPLE_CHUNK_ITEMS;
export const sampleChunk = /* wgsl */ `
// the spread sampler's chunk (sample-row-stats, sample-search and sample-draw must agree on it): WG threads × ITEMS
const WG: u32 = ${SAMPLE_CHUNK_THREADS}u;
const ITEMS: u32 = ${SAMPLE_CHUNK_ITEMS}u;
const CHUNK: u32 = ITEMS * WG;
`;

export const logitWeights = /* wgsl */ `
// the float of key k (key_of's inverse)
fn value_of(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

// weights below exp(-CUT) (relative to the max) are taken as exactly 0, so exp never sees a huge argument
const CUT: f32 = 80.0;

// Unnormalized probability exp((x - m) / t) in [0, 1]; exactly 0 below exp(-CUT).
fn weight(b: u32, m: f32, t: f32) -> f32 {
  let d = bitcast<f32>(b) - m;
  let lowest = -CUT * t;
  return select(0.0, exp(max(d, lowest) / t), d >= lowest);
}

// One step of the threshold search over keys [lo, hi): NB bins of search_width(lo, hi) keys each, bin j from
// lo + j·width; the last bin also holds every key >= hi, so the suffix sum from bin j is F(lo + j·width), the count
// (or mass) of the tokens whose key is >= that. Keys below lo are in no bin.
const NB: u32 = 16u;

fn search_width(lo: u32, hi: u32) -> u32 {
  return (hi - lo + NB - 1u) / NB;
}

// k's bin (k >= lo)
fn search_bin(k: u32, lo: u32, width: u32) -> u32 {
  return min((k - lo) / width, NB - 1u);
}

// The bin the search narrows to: the largest j starting below hi whose suffix sum reaches goal; 0 (= lo, by the
// invariant F(lo) >= goal) if none does.
fn search_pick(tot: array<f32, 16>, lo: u32, hi: u32, width: u32, goal: f32) -> u32 {
  var suffix = 0.0;
  for (var j = NB - 1u; j > 0u; j--) {
    suffix += tot[j];
    if (j * width < hi - lo && suffix >= goal) { return j; }
  }
  return 0u;
}
`;

export const tokenDraw = /* wgsl */ `
var<workgroup> s_a: u32;                 // inverse CDF: current piece [s_a, s_a + s_n), residual s_r within it
var<workgroup> s_n: u32;
var<workgroup> s_r: f32;
var<workgroup> s_pick: u32;
var<workgroup> s_last: atomic<u32>;

// Inverse CDF in token order over the kept tokens (key >= kappa) of [a0, a0 + n0): the run is split into WG
// contiguous pieces, the piece holding the residual is found by a scan of piece sums, and that piece is split
// again until one token is left. The residual starts at r0, or at uval · (the run's kept total) where r0 < 0. A
// piece is only ever chosen if its sum is > 0, so the token always has a positive kept weight (given one in the
// run). The first level's pieces are contiguous per thread (not coalesced), the price of token order.
fn draw(base: u32, a0: u32, n0: u32, r0: f32, kappa: u32, m: f32, t: f32, uval: f32, lid: u32) -> u32 {
  workgroupBarrier();
  if (lid == 0u) { s_a = a0; s_n = n0; s_r = r0; }
  loop {
    let a = workgroupUniformLoad(&s_a);
    let n = workgroupUniformLoad(&s_n);
    if (n <= 1u) { return a; }
    let r_in = s_r;
    let piece = (n + WG - 1u) / WG;
    let start = a + min(lid * piece, n);
    let end = a + min(lid * piece + piece, n);
    var s = 0.0;
    var i = start;
    for (; i + 3u < end; i += 4u) {
      let r0 = logits[base + i];
      let r1 = logits[base + i + 1u];
      let r2 = logits[base + i + 2u];
      let r3 = logits[base + i + 3u];
      let b0 = sanitize(r0);
      let b1 = sanitize(r1);
      let b2 = sanitize(r2);
      let b3 = sanitize(r3);
      if (key_of(b0) >= kappa) { s += weight(b0, m, t); }
      if (key_of(b1) >= kappa) { s += weight(b1, m, t); }
      if (key_of(b2) >= kappa) { s += weight(b2, m, t); }
      if (key_of(b3) >= kappa) { s += weight(b3, m, t); }
    }
    for (; i < end; i++) {
      let b = sanitize(logits[base + i]);
      if (key_of(b) >= kappa) { s += weight(b, m, t); }
    }
    red_f[lid] = s;
    if (lid == 0u) { s_pick = NONE; atomicStore(&s_last, 0u); }
    workgroupBarrier();
    // inclusive Hillis-Steele scan: non-decreasing in lid, since rounding is monotone
    for (var off = 1u; off < WG; off <<= 1u) {
      var v = 0.0;
      if (lid >= off) { v = red_f[lid - off]; }
      workgroupBarrier();
      red_f[lid] += v;
      workgroupBarrier();
    }
    let r = select(r_in, uval * red_f[WG - 1u], r_in < 0.0);
    let incl = red_f[lid];
    var excl = 0.0;
    if (lid > 0u) { excl = red_f[lid - 1u]; }
    if (excl <= r && incl > r) { s_pick = lid; }
    if (s > 0.0) { atomicMax(&s_last, lid); }
    workgroupBarrier();
    if (lid == 0u) {
      var j = s_pick;
      // r >= every prefix only through rounding: then take the last positive piece, and its last positive token
      var r_next = 3.0e38;
      if (j == NONE) {
        j = atomicLoad(&s_last);
      } else if (j > 0u) {
        r_next = r - red_f[j - 1u];
      } else {
        r_next = r;
      }
      s_a = a + j * piece;
      s_n = min(piece, n - j * piece);
      s_r = r_next;
    }
  }
}
`;

// A row's threshold search between the dispatches of the spread sampler (sample-search.wgsl, sample-draw.wgsl).
export const sampleSearchState = /* wgsl */ `
const TOP_K: u32 = 0u;    // searching the top-k threshold: the largest key with count(key >= k) >= top_k
const TOP_P: u32 = 1u;    // then the top-p one over the keys >= kappa: mass(key >= k) >= top_p · mass(key >= kappa)
const KEPT: u32 = 2u;     // threshold found: the kept tokens are those with key >= kappa
const GREEDY: u32 = 3u;   // temperature 0: the argmax

struct SearchState {
  phase: u32,
  lo: u32,        // search invariant F(lo) >= goal > F(hi), F(k) = count or mass of the keys >= k
  hi: u32,
  goal: f32,      // count, or mass; < 0 until the first top-p step has summed the mass
  kappa: u32,
  max_key: u32,
  argmax: u32,
  top_p: f32,
}

// A search whose bracket has closed hands its lo on: top-k's becomes kappa and the start of top-p's search.
fn settle(prev: SearchState) -> SearchState {
  var s = prev;
  if (s.phase == TOP_K && s.hi - s.lo <= 1u) {
    s.kappa = s.lo;
    if (s.top_p < 1.0) {
      s.phase = TOP_P;
      s.hi = s.max_key + 1u;
      s.goal = -1.0;
    } else {
      s.phase = KEPT;
    }
  }
  if (s.phase == TOP_P && s.hi - s.lo <= 1u) {
    s.kappa = s.lo;
    s.phase = KEPT;
  }
  return s;
}
`;
