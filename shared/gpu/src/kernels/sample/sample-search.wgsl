// The sampler spread over a row's chunks (sample-spread.ts), one dispatch a search step: every row's CHUNK-logit
// chunks in parallel instead of one workgroup walking the row up to 18 times. Same semantics as sample.wgsl.
// Dispatch `step` of a run (the row's chunks' partial results between dispatches):
//   1. the row's search state: at step 0 from the row-stats extremes and the params, later from the state and the
//      chunks' bins of step - 1 (every workgroup of the row works it out the same way, from the same data);
//   2. while the search runs (top-k, then top-p), this chunk's bins for the state's [lo, hi): counts or masses,
//      and the smallest and largest key inside [lo, hi) of each bin; the next step narrows [lo, hi) to the chosen
//      bin's keys, so it ends in a few steps when few distinct keys sit near the threshold;
//   3. once the threshold kappa is known, once: this chunk's kept mass, for sample-draw.wgsl.
// Greedy rows do nothing here (sample-draw.wgsl takes their argmax from the row stats).
//
// Bindings, in order (numbered by the launcher):
//   logits: array<u32>, read                f32 bits; row r at logits_offset + r * row_stride, `vocab` values
//   params: array<u32>, read                SAMPLING_PARAMS_WORDS (8) per row, row r at (row_offset + r) * 8
//   stats:  array<Extremes>, read           the row-stats kernel's, row r's chunks at r * chunks
//   state:  array<SearchState>, read_write  row r's at r * 2 + step % 2 (written by chunk 0's workgroup)
//   bins:   array<ChunkBins>, read_write    row r's chunk c at (r * 2 + step % 2) * chunks + c
//   kept:   array<f32>, read_write          row r's chunk c's kept mass at r * chunks + c
//   u:      uniforms { vocab, row_stride, logits_offset, row_offset, chunks, group, step, last }
// Grid: (ceil(chunks / group), rows): a workgroup takes `group` consecutive chunks of its row (more than one where
// the rows' chunks outnumber the workgroups the device runs at once, so each state and bins gather serves several).
// `last` = 1 on the run's final dispatch: a search still going there stops at its lo (F(lo) >= goal keeps a
// superset; the launcher sizes the run so that it never happens).

/*@BINDINGS@*/
//!include logit-extremes, logit-weights
//!include sample-search-state
//!include sample-chunk
const_assert WG == NB * NB;   // the bins' reduction: thread lid sums a slice of bin lid / NB

var<workgroup> red_f: array<f32, NB * WG>;       // bins x threads; its first WG entries also reduce one value
var<workgroup> red_lo: array<u32, WG>;
var<workgroup> red_hi: array<u32, WG>;
var<workgroup> key_lo: array<atomic<u32>, NB>;   // this chunk's bins: smallest and largest key inside [lo, hi)
var<workgroup> key_hi: array<atomic<u32>, NB>;
var<workgroup> tot: array<f32, NB>;              // the previous step's bins, summed over the row's chunks
var<workgroup> tot_lo: array<u32, NB>;
var<workgroup> tot_hi: array<u32, NB>;
var<workgroup> ws: SearchState;
var<workgroup> was_kept: u32;

// The row's state at step 0: extremes of its chunks, then the first search (or none).
fn start_state(row: u32, pr: u32, lid: u32) -> SearchState {
  var e = NO_EXTREMES;
  for (var c = lid; c < u.chunks; c += WG) { e = extremes_merge(e, stats[row * u.chunks + c]); }
  e = wg_extremes(e, lid);
  var s = SearchState(KEPT, e.min_key, e.max_key + 1u, 0.0, e.min_key, e.max_key, e.argmax, bitcast<f32>(params[pr + 2u]));
  let top_k = params[pr + 1u];
  if ((params[pr] & 0x7fffffffu) == 0u) {
    s.phase = GREEDY;
  } else if (top_k > 0u && top_k < u.vocab) {
    s.phase = TOP_K;
    s.goal = f32(top_k);
  } else if (s.top_p < 1.0) {
    s.phase = TOP_P;
    s.goal = -1.0;
  }
  return s;
}

// The previous step's bins of the row summed over its chunks, into tot / tot_lo / tot_hi: thread lid takes bin
// lid % NB of every (WG / NB)-th chunk, then NB threads sum those in a fixed order (every workgroup of the row
// gets the same bits).
fn gather_bins(first: u32, lid: u32) {
  let b = lid % NB;
  var s = 0.0;
  var lo = NONE;
  var hi = 0u;
  for (var c = lid / NB; c < u.chunks; c += WG / NB) {
    let p = first + c;
    s += bins[p].sum[b];
    lo = min(lo, bins[p].lo_key[b]);
    hi = max(hi, bins[p].hi_key[b]);
  }
  red_f[lid] = s;
  red_lo[lid] = lo;
  red_hi[lid] = hi;
  workgroupBarrier();
  if (lid < NB) {
    var ts = 0.0;
    var tl = NONE;
    var th = 0u;
    for (var g = 0u; g < WG / NB; g++) {
      ts += red_f[g * NB + lid];
      tl = min(tl, red_lo[g * NB + lid]);
      th = max(th, red_hi[g * NB + lid]);
    }
    tot[lid] = ts;
    tot_lo[lid] = tl;
    tot_hi[lid] = th;
  }
  workgroupBarrier();
}

// One search step taken with the summed bins: [lo, hi) narrowed to the keys present in the chosen bin.
fn narrow(prev: SearchState) -> SearchState {
  var s = prev;
  var goal = s.goal;
  if (goal < 0.0) {
    var total = 0.0;
    for (var j = 0u; j < NB; j++) { total += tot[j]; }
    goal = s.top_p * total;
    s.goal = goal;
  }
  let j = search_pick(tot, s.lo, s.hi, search_width(s.lo, s.hi), goal);
  if (tot_lo[j] <= tot_hi[j]) {
    s.lo = tot_lo[j];
    s.hi = tot_hi[j] + 1u;
  } else {
    // no key of the chosen bin inside [lo, hi): only f32 sums rounding apart between steps get here; keep lo
    s.hi = s.lo + 1u;
  }
  return s;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.y;
  let pr = (u.row_offset + row) * 8u;

  // 1. the row's state
  if (u.step == 0u) {
    let s = start_state(row, pr, lid);
    if (lid == 0u) { ws = settle(s); was_kept = 0u; }
  } else {
    let prev_at = row * 2u + (u.step - 1u) % 2u;
    if (lid == 0u) { ws = state[prev_at]; }
    let prev = workgroupUniformLoad(&ws);
    if (prev.phase == TOP_K || prev.phase == TOP_P) {
      gather_bins(prev_at * u.chunks, lid);
      if (lid == 0u) { ws = settle(narrow(prev)); was_kept = 0u; }
    } else if (lid == 0u) {
      was_kept = 1u;
    }
  }
  if (lid == 0u && u.last != 0u && (ws.phase == TOP_K || ws.phase == TOP_P)) {
    ws.kappa = ws.lo;
    ws.phase = KEPT;
  }
  let s = workgroupUniformLoad(&ws);
  let done_before = workgroupUniformLoad(&was_kept);
  if (wg.x == 0u && lid == 0u) { state[row * 2u + u.step % 2u] = s; }
  if (s.phase == GREEDY || done_before != 0u) { return; }

  let m = value_of(s.max_key);
  let t = clamp(bitcast<f32>(params[pr]), 1e-30, 1e30);
  let base = u.logits_offset + row * u.row_stride;
  // this workgroup's chunks, one after another (each chunk's results are the same bits whatever the grouping),
  // the next chunk's logits loaded before this one's sums
  let first = wg.x * u.group;
  let stop = min(first + u.group, u.chunks);
  var next = chunk_logits(first, base, lid);
  for (var c = first; c < stop; c++) {
    let b = next;
    if (c + 1u < stop) { next = chunk_logits(c + 1u, base, lid); }
    if (s.phase == KEPT) {
      kept_mass(s, row, c, b, m, t, lid);
    } else {
      chunk_bins(s, row, c, b, m, t, lid);
    }
  }
}

// This invocation's logits of chunk c, loaded together: indices start + lid + i·WG (past the end: the last one,
// never counted).
fn chunk_logits(c: u32, base: u32, lid: u32) -> array<u32, ITEMS> {
  let end = min(c * CHUNK + CHUNK, u.vocab);
  var b: array<u32, ITEMS>;
  for (var i = 0u; i < ITEMS; i++) { b[i] = logits[base + min(c * CHUNK + lid + i * WG, end - 1u)]; }
  return b;
}

// 3. chunk c's kept mass
fn kept_mass(s: SearchState, row: u32, c: u32, b: array<u32, ITEMS>, m: f32, t: f32, lid: u32) {
  let end = min(c * CHUNK + CHUNK, u.vocab);
  var w = 0.0;
  for (var i = 0u; i < ITEMS; i++) {
    let x = sanitize(b[i]);
    if (c * CHUNK + lid + i * WG < end && key_of(x) >= s.kappa) { w += weight(x, m, t); }
  }
  workgroupBarrier(); // the previous chunk's sum is read
  red_f[lid] = w;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { red_f[lid] += red_f[lid + h]; }
    workgroupBarrier();
  }
  if (lid == 0u) { kept[row * u.chunks + c] = red_f[0]; }
}

// 2. chunk c's bins for [lo, hi)
fn chunk_bins(s: SearchState, row: u32, c: u32, b: array<u32, ITEMS>, m: f32, t: f32, lid: u32) {
  let start = c * CHUNK;
  let end = min(start + CHUNK, u.vocab);
  let mass = s.phase == TOP_P;
  let width = search_width(s.lo, s.hi);
  workgroupBarrier(); // the previous chunk's sums and keys are read
  for (var j = 0u; j < NB; j++) { red_f[j * WG + lid] = 0.0; }
  if (lid < NB) {
    atomicStore(&key_lo[lid], NONE);
    atomicStore(&key_hi[lid], 0u);
  }
  workgroupBarrier();
  // the smallest and largest key of each bin: a thread folds a run of its keys in one bin before its atomic pair
  // (keys near the threshold crowd a few bins, so one atomic a key would queue on the same few words)
  var run = NB;
  var run_lo = NONE;
  var run_hi = 0u;
  for (var i = 0u; i < ITEMS; i++) {
    let x = sanitize(b[i]);
    let k = key_of(x);
    if (start + lid + i * WG < end && k >= s.lo) {
      let j = search_bin(k, s.lo, width);
      red_f[j * WG + lid] += select(1.0, weight(x, m, t), mass);
      if (k < s.hi) {
        if (j != run) {
          if (run < NB) {
            atomicMin(&key_lo[run], run_lo);
            atomicMax(&key_hi[run], run_hi);
          }
          run = j;
          run_lo = k;
          run_hi = k;
        } else {
          run_lo = min(run_lo, k);
          run_hi = max(run_hi, k);
        }
      }
    }
  }
  if (run < NB) {
    atomicMin(&key_lo[run], run_lo);
    atomicMax(&key_hi[run], run_hi);
  }
  workgroupBarrier();
  // bin lid / NB: thread lid sums its bin's columns lid % NB, lid % NB + NB, ... (neighbouring threads, neighbouring
  // words), then one thread a bin sums those NB partials
  {
    let bin = lid / NB;
    var v = 0.0;
    for (var col = lid % NB; col < WG; col += NB) { v += red_f[bin * WG + col]; }
    workgroupBarrier();
    red_f[lid] = v;
    workgroupBarrier();
  }
  if (lid < NB) {
    var v = 0.0;
    for (var g = 0u; g < NB; g++) { v += red_f[lid * NB + g]; }
    let at = (row * 2u + u.step % 2u) * u.chunks + c;
    bins[at].sum[lid] = v;
    bins[at].lo_key[lid] = atomicLoad(&key_lo[lid]);
    bins[at].hi_key[lid] = atomicLoad(&key_hi[lid]);
  }
}
