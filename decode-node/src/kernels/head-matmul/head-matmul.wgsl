// y[b, h, n] = Σ_k x[b, h, k] · W[h, k, n] for every head h at once (a batched GEMM with tiny M = batch).
// Workgroup (n block of 4·CT columns, head h, batch block of BB rows), WG = CT·KS threads: thread (ct, ks)
// owns 4 adjacent columns and the k rows ks, ks + KS, …, so a weight row is read coalesced along n and the
// K loop is split KS ways (K is 128 or 512 here: a serial K loop left the GPU idle); x's block is staged
// KC values at a time, and the KS partial sums are added in workgroup memory at the end (or, with SG_LANES > 0,
// the subgroup's SG_LANES / CT of them by xor shuffles first, so the finishing thread adds WG / SG_LANES instead of
// KS: at KS 128 its walk over workgroup memory was the kernel's longest chain). Two shapes
// (head-matmul.ts): 64 columns × 4 rows, or 16 columns × 1 row with the whole of x staged at once (small batches).
// With ROPE, one more column of workgroups (wg.x == u.rope_block) ropes each head's q_pe slice of x into y
// beside the product instead (rope_rows, as rope.ts computes it): the absorbed query's two halves in one dispatch.
// With APPEND (rope form, portable engine), one more column's head-0 workgroups run the KV append's rows beside it
// (append_rows: kv-quantize.ts's kv_row for each of the block's rows, normed, roped and written to the cache).
// With MERGE, x is instead the split-KV partial outputs of grouped decode attention [batch, heads, splits, K] and
// their LSEs [batch, heads, splits]: each staged x value is the splits' log-sum-exp merge (merge_prologue weighs the
// splits once per workgroup, x_at sums them as grouped-decode-merge.wgsl does, bit for bit), so ō · W_UVᵀ needs
// no merge dispatch before it.
// Prepended by the launcher: CT, KS, WG, BB, KC, SG_LANES (the device's subgroup size, 0: no shuffles; with it
// `enable subgroups;` first and subgroups being runs of consecutive invocations), the bindings, the uniforms `u`, weight_at(), is_rope_block(),
// rope_rows(), is_append_block(), append_rows(), merge_prologue() and x_at().
var<workgroup> xs: array<f32, BB * KC>;
// the KS partials of each (row, column quad): one a thread, or one a subgroup's run of ks
const PARTS: u32 = select(KS, WG / max(SG_LANES, 1u), SG_LANES > 0u);
var<workgroup> partial: array<vec4<f32>, PARTS * BB * CT>;

fn w4(i: u32, n0: u32) -> vec4<f32> {
  if (n0 + 3u < u.n) {
    return vec4<f32>(weight_at(i), weight_at(i + 1u), weight_at(i + 2u), weight_at(i + 3u));
  }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (n0 + j < u.n) { v[j] = weight_at(i + j); }
  }
  return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let b0 = wg.z * BB;
  if (is_rope_block(wg.x)) {
    rope_rows(h, b0, lid);
    return;
  }
  if (is_append_block(wg.x)) {
    if (h == 0u) { append_rows(b0, lid); }
    return;
  }
  merge_prologue(h, b0, lid);
  let ct = lid % CT;
  let ks = lid / CT;
  let n0 = (wg.x * CT + ct) * 4u;
  var acc = array<vec4<f32>, BB>();
  for (var k0 = 0u; k0 < u.k; k0 += KC) {
    for (var i = lid; i < BB * KC; i += WG) {
      let b = b0 + i / KC;
      let k = k0 + i % KC;
      var v = 0.0;
      if (b < u.batch && k < u.k) { v = x_at(b, h, k, i / KC); }
      xs[i] = v;
    }
    workgroupBarrier();
    if (n0 < u.n) {
      let kn = min(KC, u.k - k0);
      let wrow = u.w_offset + h * u.w_head_stride + k0 * u.w_row_stride + n0;
      // four rows' weights loaded together, then taken in k order (the sums' order is the loop's)
      var kk = ks;
      for (; kk + 3u * KS < kn; kk += 4u * KS) {
        let w0 = w4(wrow + kk * u.w_row_stride, n0);
        let w1 = w4(wrow + (kk + KS) * u.w_row_stride, n0);
        let w2 = w4(wrow + (kk + 2u * KS) * u.w_row_stride, n0);
        let w3 = w4(wrow + (kk + 3u * KS) * u.w_row_stride, n0);
        for (var bb = 0u; bb < BB; bb++) {
          let xb = bb * KC + kk;
          acc[bb] = fma(vec4<f32>(xs[xb]), w0, acc[bb]);
          acc[bb] = fma(vec4<f32>(xs[xb + KS]), w1, acc[bb]);
          acc[bb] = fma(vec4<f32>(xs[xb + 2u * KS]), w2, acc[bb]);
          acc[bb] = fma(vec4<f32>(xs[xb + 3u * KS]), w3, acc[bb]);
        }
      }
      for (; kk < kn; kk += KS) {
        let wv = w4(wrow + kk * u.w_row_stride, n0);
        for (var bb = 0u; bb < BB; bb++) { acc[bb] = fma(vec4<f32>(xs[bb * KC + kk]), wv, acc[bb]); }
      }
    }
    workgroupBarrier();
  }
  /*@PARTIALS@*/
  workgroupBarrier();
  // the first BB·CT threads each finish one (row, column quad)
  if (lid >= BB * CT) { return; }
  let bb = lid / CT;
  let c = lid % CT;
  let b = b0 + bb;
  let m0 = (wg.x * CT + c) * 4u;
  if (b >= u.batch || m0 >= u.n) { return; }
  var sum = vec4<f32>(0.0);
  for (var s = 0u; s < PARTS; s++) { sum += partial[(s * BB + bb) * CT + c]; }
  let o = u.y_offset + b * u.y_row_stride + h * u.y_head_stride + m0;
  for (var j = 0u; j < 4u; j++) {
    if (m0 + j < u.n) { y[o + j] = sum[j]; }
  }
}
