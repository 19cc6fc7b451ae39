// The sampler's first pass spread over many workgroups: chunk c of row r (CHUNK logits, one trip of 8 loads a
// thread) reduced to its Extremes. A batch-1 decode step otherwise has one workgroup read all 102,400 logits
// while the rest of the card idles; the sampler then reads a row's chunks' extremes instead of the row.
//
// Bindings, in order (numbered by the launcher):
//   logits: array<u32>, read               f32 bits; row r at logits_offset + r * row_stride, `vocab` values
//   stats:  array<Extremes>, read_write    chunk c of row r at r * chunks + c
//   u:      uniforms { vocab, row_stride, logits_offset, chunks }
// Workgroups: (chunks, rows), chunks = ceil(vocab / CHUNK).

/*@BINDINGS@*/
//!include logit-extremes
//!include sample-chunk

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let chunk = wg.x;
  let row = wg.y;
  let start = chunk * CHUNK;
  let end = min(start + CHUNK, u.vocab);
  let e = wg_extremes(scan_extremes(u.logits_offset + row * u.row_stride, start, end, lid), lid);
  if (lid == 0u) { stats[row * u.chunks + chunk] = e; }
}
