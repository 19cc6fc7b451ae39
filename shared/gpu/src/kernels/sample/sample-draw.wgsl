// The spread sampler's last dispatch (sample-spread.ts), one workgroup a row: greedy rows take the argmax the
// search state holds; the others pick the chunk holding u · (kept total) from the chunks' kept masses, then
// draw the token inside it (token-draw's inverse CDF in token order, started at the residual).
//
// Bindings, in order (numbered by the launcher):
//   logits: array<u32>, read          f32 bits; row r at logits_offset + r * row_stride, `vocab` values
//   params: array<u32>, read          SAMPLING_PARAMS_WORDS (8) per row, row r at (row_offset + r) * 8
//   state:  array<SearchState>, read  row r's at r * 2 + slot (the search's last dispatch)
//   kept:   array<f32>, read          row r's chunk c's kept mass at r * chunks + c
//   out:    array<u32>, read_write    token id of row r at row_offset + r
//   u:      uniforms { vocab, row_stride, logits_offset, row_offset, chunks, slot }
// Prelude (sample-draw.ts): sampling_uniform(seed, counter) (sampling-uniform.ts).

/*@BINDINGS@*/
//!include logit-extremes, token-draw
//!include sample-search-state
//!include sample-chunk

var<workgroup> red_f: array<f32, WG>;
var<workgroup> ws: SearchState;
var<workgroup> s_chunk: u32;
var<workgroup> s_rest: f32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let pr = (u.row_offset + row) * 8u;
  if (lid == 0u) { ws = state[row * 2u + u.slot]; }
  let s = workgroupUniformLoad(&ws);
  if (s.phase == GREEDY) {
    if (lid == 0u) { out[u.row_offset + row] = s.argmax; }
    return;
  }
  let uval = sampling_uniform(params[pr + 3u], params[pr + 4u]);
  // the chunk: one thread walks the row's chunks (tens of them), summing in the same order twice so that the
  // second walk's prefixes end at the total r was taken from; r past every prefix (rounding) takes the last
  // chunk with kept mass
  if (lid == 0u) {
    let first = row * u.chunks;
    var total = 0.0;
    for (var c = 0u; c < u.chunks; c++) { total += kept[first + c]; }
    let r = uval * total;
    var before = 0.0;
    var pick = NONE;
    var pick_before = 0.0;
    var last = 0u;
    var last_before = 0.0;
    for (var c = 0u; c < u.chunks; c++) {
      let w = kept[first + c];
      if (w > 0.0) {
        if (pick == NONE && before <= r && before + w > r) { pick = c; pick_before = before; }
        last = c;
        last_before = before;
      }
      before += w;
    }
    if (pick == NONE) { pick = last; pick_before = last_before; }
    s_chunk = pick;
    s_rest = max(r - pick_before, 0.0);
  }
  let c = workgroupUniformLoad(&s_chunk);
  let rest = workgroupUniformLoad(&s_rest);
  let a0 = c * CHUNK;
  let base = u.logits_offset + row * u.row_stride;
  let token = draw(base, a0, min(CHUNK, u.vocab - a0), rest, s.kappa, value_of(s.max_key), clamp(bitcast<f32>(params[pr]), 1e-30, 1e30), uval, lid);
  if (lid == 0u) { out[u.row_offset + row] = token; }
}
