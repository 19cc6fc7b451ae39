// head-matmul.wgsl's product on subgroup matrices (tensor cores) for batches of 16 rows and more: y[b, h, n] =
// Σ_k x[b, h, k] · W[h, k, n], f16 operands (x rounded once when staged, bf16 weights converted), f32 sums.
// Workgroup (n block of BN = 64 columns, head h, row block of BM rows), 4 subgroups of 32 side by side over the
// columns, each holding BM / 16 result tiles of 16 × 16. K advances BK at a time: the block's x rows (merged
// from the split-KV partials by x_at in the merge form) and the weight slab W[h, k0 .. k0 + BK, n block]
// (row-major, so a right-hand matrix loaded row-major) are staged as f16 in workgroup memory, each thread's
// loads issued together before its stores, then every subgroup multiplies its tiles. With ROPE, the column of
// workgroups wg.x == u.rope_block ropes q_pe as the portable kernel does. Each result tile leaves through the
// subgroup's 16 × 16 scratch tile, so partial rows and columns are plain scalar stores.
// Prepended by the launcher (head-matmul.ts): the enables and matrix aliases, BM (= BB), BN, BK, XSTR, WSTR,
// WG, TM, the bindings, uniforms `u`, is_rope_block(), rope_rows(), merge_prologue(), x_at(), w_pair16() and the
// generated parts below.

// every workgroup variable a multiple of 16 bytes, the matrix tiles first (aligned for the matrix loads)
var<workgroup> xs: array<f16, BM * XSTR>;
var<workgroup> ws: array<f16, BK * WSTR>;
var<workgroup> out_tile: array<f32, 4 * 256>;

// x[b0 + i / BK, h, k0 + i % BK] (zero past the batch or K)
fn x_val(i: u32, h: u32, b0: u32, k0: u32) -> f32 {
  let bb = i / BK;
  let k = k0 + i % BK;
  if (b0 + bb < u.batch && k < u.k) { return x_at(b0 + bb, h, k, bb); }
  return 0.0;
}

// the weight pair W[h, k0 + i / (BN/2), n0 + 2·(i % (BN/2)) + {0, 1}] as one raw word (zero past K or N; N is even)
fn w_word(i: u32, h: u32, k0: u32, n0: u32) -> u32 {
  let k = k0 + i / (BN / 2u);
  let n = n0 + (i % (BN / 2u)) * 2u;
  if (k < u.k && n < u.n) { return w[(u.w_offset + h * u.w_head_stride + k * u.w_row_stride + n) >> 1u]; }
  return 0u;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let b0 = wg.z * BM;
  if (is_rope_block(wg.x)) {
    rope_rows(h, b0, lid);
    return;
  }
  merge_prologue(h, b0, lid);
  let n0 = wg.x * BN;
  let sg = lid / 32u;
  let lane = lid % 32u;
  /*@DECLARE@*/
  for (var k0 = 0u; k0 < u.k; k0 += BK) {
    workgroupBarrier();   // the previous slab's products are done with xs and ws
    /*@STAGE@*/
    workgroupBarrier();
    /*@MULTIPLY@*/
  }
  /*@WRITE@*/
}
