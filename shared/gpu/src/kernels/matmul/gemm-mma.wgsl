// y = x · Wᵀ (or y += x · Wᵀ) on subgroup matrices (tensor cores where the adapter maps them there), for M
// past the GEMV range: f32 (or f16: the launcher's xF16) activations x [M, K], weights W [N, K] in bf16 / f16 / f32,
// f32 y.
//
// One workgroup = SGM · SGN subgroups of 32 computes a BM × BN block of y; the subgroups sit SGM × SGN over it, each
// owning a (BM/SGM) × (BN/SGN) block as TM × TN result tiles of 16 × 16 (f32 accumulators, one per tile). K advances BK at
// a time: the next x and W slabs are fetched into registers while the current ones are multiplied, then written
// to workgroup memory as f16 (x rounded once, bf16 weights converted exactly where in f16 range), so every
// value is read from memory once per workgroup. The K loop is generated (gemm-mma.ts): with one slab in
// workgroup memory a trip stores, waits, multiplies and waits again; with two (STAGES = 2) the next slab is
// stored into the other half while nothing reads it, one barrier a trip. Rows of x beyond M, rows of W beyond N
// and the K tail are zeros; nothing outside y's M × N block is written. f16 operands: |x| and |w| must stay
// below 65504.
//
// Each result tile leaves through a 16 × 16 f32 scratch tile of its subgroup, so rows and columns past the
// edges, strided y and the accumulate form are handled by plain scalar stores.
//
// Prepended by the launcher (gemm-mma.ts): enables, constants BM, BN, BK, STR (f16 row stride, padded), STAGES,
// TM, TN, WG, SGM, SGN, GROUP (rows of blocks a group in grouped order, 0: none), bindings x @0 (vec4<f32>, or vec2<u32> of 4 f16), w @1 (u32 words), y @2 (f32), uniforms u @3 (GEMM_UNIFORMS), the
// weight unpack helpers, aliases LeftT / RightT / ResT. Grid: (ceil(N / BN), ceil(M / BM), splits), taken
// x fastest or (GROUP) in groups of GROUP rows of blocks, down then across (the grouped-order piece).

var<workgroup> xs: array<f16, BM * STR * STAGES>;   // the x slab(s), row m at m·STR (+ BM·STR for the second)
var<workgroup> ws: array<f16, BN * STR * STAGES>;   // the W slab(s), row n at n·STR (a column-major K × N right operand)
var<workgroup> out_tile: array<f32, SGM * SGN * 256>;   // one 16 × 16 result tile per subgroup on its way out

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // this workgroup's block: x across the columns, y down the rows, or (the launcher's groupRows) in grouped order
  /*@BLOCK@*/
  // subgroups are the runs of 32 consecutive invocations (the launcher requires subgroup size 32); offsets
  // derived from sg are uniform per subgroup, which is what the matrix loads need (hence the diagnostics off)
  let sg = lid / 32u;
  let lane = lid % 32u;
  let sm = (sg / SGN) * (BM / SGM);   // this subgroup's first row in the block
  let sn = (sg % SGN) * (BN / SGN);   // and first column
  // split-K: this workgroup's K range (the whole of K unsplit); its partial products go to y at z·split_stride
  let kb = wg.z * u.k_split;
  let ke = min(u.K, kb + u.k_split);

  /*@DECLARE@*/

  /*@FETCH@*/
  /*@LOOP@*/

  /*@WRITE@*/
}
