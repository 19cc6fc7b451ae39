// Grammar masks (constrained decoding): a row with a mask gets -inf at every token its mask does not allow,
// in place, after logit-adjust and before the sampler (which reads -inf as -2^126: never sampled while any
// allowed token is finite). Rows whose mask row is NO_MASK are left untouched. One workgroup per row.
//
// Bindings, in order (numbered by the launcher):
//   logits:    array<f32>, read_write  row r at logits_offset + r * row_stride, `vocab` values
//   mask_rows: array<u32>, read        per batch row (at row_offset + r): its row of `masks`, or NO_MASK
//   masks:     array<u32>, read        [mask rows, words]: bit (i & 31) of word i >> 5 = token i allowed
//   u:         uniforms { rows, vocab, row_stride, logits_offset, row_offset, words }

/*@BINDINGS@*/

const WG: u32 = 256u;
const NO_MASK: u32 = 0xffffffffu;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let m = mask_rows[u.row_offset + row];
  if (m == NO_MASK) { return; }
  let base = u.logits_offset + row * u.row_stride;
  let mbase = m * u.words;
  let neg_inf = bitcast<f32>(u.neg_inf_bits);
  for (var i = lid; i < u.vocab; i += WG) {
    let bit = (masks[mbase + (i >> 5u)] >> (i & 31u)) & 1u;
    if (bit == 0u) { logits[base + i] = neg_inf; }
  }
}
