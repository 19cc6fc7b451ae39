// Counts each row's sampled token into its sequence's counts row (for the next step's penalties), right
// behind the sampler on the GPU, so counts never wait for tokens to reach the CPU. One thread per row; rows
// of one dispatch own distinct counts rows, so there is no race.
//
// Bindings, in order (numbered by the launcher):
//   tokens: array<u32>, read        sampled id of row r at row_offset + r
//   params: array<u32>, read        logit params, counts_row at (row_offset + r) * 8 + 3
//   counts: array<u32>, read_write  [counts rows, vocab]
//   u:      uniforms { rows, vocab, row_offset }

/*@BINDINGS@*/

const NO_COUNTS: u32 = 0xffffffffu;
const PROMPT_BIT: u32 = 0x80000000u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.x;
  if (row >= u.rows) { return; }
  let crow = params[(u.row_offset + row) * 8u + 3u];
  let id = tokens[u.row_offset + row];
  if (crow == NO_COUNTS || id >= u.vocab) { return; }
  let i = crow * u.vocab + id;
  let c = counts[i];
  // saturates below the prompt bit
  if ((c & ~PROMPT_BIT) != ~PROMPT_BIT) { counts[i] = c + 1u; }
}
