// logit_bias and penalties, in place on a row of logits, before the sampler (the rule is in logit-params.ts).
// One workgroup per row; a row whose settings change nothing returns at once.
//
// Bindings, in order (numbered by the launcher):
//   logits: array<f32>, read_write  row r at logits_offset + r * row_stride, `vocab` values
//   params: array<u32>, read        LOGIT_PARAMS_WORDS (8) per row at (row_offset + r) * 8:
//                                               presence, frequency, repetition (f32 bits), counts_row,
//                                               bias_start, bias_len, top_logprobs (not read here)
//   counts: array<u32>, read        [counts rows, vocab]: bit 31 = in the prompt, bits 0..30 = times generated
//   bias:   array<u32>, read        (token id, f32 bits) pairs
//   u:      uniforms { rows, vocab, row_stride, logits_offset, row_offset }

/*@BINDINGS@*/

const WG: u32 = 256u;
const NO_COUNTS: u32 = 0xffffffffu;
const PROMPT_BIT: u32 = 0x80000000u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let base = u.logits_offset + row * u.row_stride;
  let pr = (u.row_offset + row) * 8u;
  let presence = bitcast<f32>(params[pr]);
  let frequency = bitcast<f32>(params[pr + 1u]);
  let repetition = bitcast<f32>(params[pr + 2u]);
  let crow = params[pr + 3u];
  let bias_start = params[pr + 4u];
  let bias_len = params[pr + 5u];

  // logit_bias first, by one thread (ids of a row are distinct; a few hundred at most)
  if (lid == 0u) {
    for (var j = 0u; j < bias_len; j++) {
      let e = (bias_start + j) * 2u;
      let id = bias[e];
      if (id < u.vocab) { logits[base + id] += bitcast<f32>(bias[e + 1u]); }
    }
  }
  if (crow == NO_COUNTS) { return; }
  if (presence == 0.0 && frequency == 0.0 && repetition == 1.0) { return; }
  storageBarrier();
  workgroupBarrier();

  let cbase = crow * u.vocab;
  for (var i = lid; i < u.vocab; i += WG) {
    let c = counts[cbase + i];
    if (c == 0u) { continue; }
    let n = c & ~PROMPT_BIT;
    var x = logits[base + i];
    x = select(x * repetition, x / repetition, x > 0.0);
    x -= frequency * f32(n) + select(0.0, presence, n > 0u);
    logits[base + i] = x;
  }
}
