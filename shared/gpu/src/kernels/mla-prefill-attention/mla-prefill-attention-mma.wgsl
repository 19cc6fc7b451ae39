// MLA prefill attention on subgroup matrices (tensor cores where the adapter maps them there): the same math,
// inputs, outputs and causal rule as mla-prefill-attention.wgsl, FlashAttention-2 style with both products as
// 16×16×16 f16 → f32 matrix tiles. One workgroup = NSG subgroups of 32 takes BQ = 16·NSG query rows (64 or 128)
// of one head; subgroup sg owns rows 16·sg .. 16·sg+15 and keeps their q (scaled by scale·log2 e, rounded to f16)
// in registers as DQK/16 left matrices for the whole run (staged 64 rows at a time through the tile's space).
// Key tiles of BK = 32 keys:
//
//   fetch   the tile's K rows (k_nope from kv, the shared k_pe from latent) and V rows, rounded to f16 into
//           workgroup memory once for the NSG subgroups (twice the subgroups: half the staging a product);
//           the next tile's are fetched into registers meanwhile
//   scores  S[16, BK] = Q[16, DQK] · Kᵀ              2·DQK/16 matrix products per subgroup
//   softmax online, per row, f32, base 2: lanes r and r+16 own row r (keys 0..15 and 16..31), reduced by a shuffle; a lane's
//           16 weights go to P as neighbours (32 contiguous bytes)
//   output  O[16, DV] += P[16, BK] · V[BK, DV]       (BK/16)·(DV/16) products, DV/16 f32 accumulators
//
// f16 range: P ≤ 2^TAU by a lazy running max: a row's max moves only when a tile's max exceeds it by more than
// TAU; then (rarely: the first keys usually hold the largest scores) every subgroup rescales its accumulators
// through workgroup memory. q·scale·log2 e, k and v must fit f16 (|x| < 65504).
//
// Prepended by the launcher (mla-prefill-attention-mma.ts): enables and diagnostics, constants NOPE, DQK, DV,
// BQ, BK, WG, NSG, KSTR, VSTR, PSTR (f16 row strides, padded), KO, VO, PO (offsets in hs), HS (its size), K4 = DQK/4,
// NOPE4, V4, NCH (fetch chunks per thread); aliases LeftT, RightT, ResT; bindings
//   0 q: array<vec4<f32>>   1 kv: array<vec4<f32>>   2 latent: array<vec4<f32>>   3 out: array<f32>   4 u
// with the uniforms of the portable kernel (strides in elements, multiples of 4 here). Grid: (ceil(q_len / BQ), heads).

// Every f16 operand in one array (one base address for scalar and matrix accesses alike):
//   at start   hs[row·KSTR + d]          q of 64 of the workgroup's rows at a time (over the tiles and P)
//   per tile   hs[KO + j·KSTR + d]       K tile, key j: k_nope | k_pe
//              hs[VO + j·VSTR + d]       V tile
//              hs[PO + sg·16·PSTR + r·PSTR + j]   subgroup sg's probabilities, row r, key j
var<workgroup> hs: array<f16, HS>;
var<workgroup> sp: array<f32, NSG * SPS>;        // per subgroup, SPS apart: scores [key][row] (col-major), then accumulator tiles
// every workgroup variable is a multiple of 16 bytes, so each starts 16-byte aligned whatever order the compiler
// lays them out in (matrix loads from workgroup memory want 16-byte aligned rows)
var<workgroup> resc: array<u32, NSG>;           // per subgroup: a row's max moved this tile
var<workgroup> resc_any: array<u32, 4>;

//!include online-softmax
const TAU: f32 = 8.0;     // p ≤ 2^TAU between rescales

// Chunk i of a tile (4 values): K chunks first (key i / K4, dims 4·(i % K4)..), then V chunks; 0 past key_end.
fn fetch_chunk(i: u32, k0: u32, h: u32, key_end: u32) -> vec4<f16> {
  var x = vec4<f32>(0.0);
  if (i < BK * K4) {
    let key = k0 + i / K4;
    let c = i % K4;
    if (key < key_end) {
      if (c < NOPE4) {
        x = kv[((key * u.kv_row_stride + h * u.kv_head_stride) >> 2u) + c];
      } else {
        x = latent[((key * u.lat_row_stride + u.kpe_offset) >> 2u) + c - NOPE4];
      }
    }
  } else if (i < BK * (K4 + V4)) {
    let j = i - BK * K4;
    let key = k0 + j / V4;
    if (key < key_end) {
      x = kv[((key * u.kv_row_stride + h * u.kv_head_stride + NOPE) >> 2u) + j % V4];
    }
  }
  return vec4<f16>(x);
}

// q rows q0 + r0 .. q0 + r0 + 63 of head h, scaled and rounded to f16, into hs rows 0..63 (zeros past q_len).
fn stage_q(lid: u32, q0: u32, r0: u32, h: u32) {
  for (var i = lid; i < 64u * K4; i += WG) {
    let row = i / K4;
    var x = vec4<f32>(0.0);
    if (q0 + r0 + row < u.q_len) {
      x = q[(((q0 + r0 + row) * u.q_row_stride + h * u.q_head_stride) >> 2u) + i % K4] * u.scale_log2e;
    }
    let o = row * KSTR + (i % K4) * 4u;
    let x16 = vec4<f16>(x);
    hs[o] = x16.x; hs[o + 1u] = x16.y; hs[o + 2u] = x16.z; hs[o + 3u] = x16.w;
  }
}

fn store_chunk(i: u32, x: vec4<f16>) {
  var o = 0u;
  if (i < BK * K4) {
    o = KO + (i / K4) * KSTR + (i % K4) * 4u;
  } else if (i < BK * (K4 + V4)) {
    let j = i - BK * K4;
    o = VO + (j / V4) * VSTR + (j % V4) * 4u;
  } else {
    return;
  }
  hs[o] = x.x; hs[o + 1u] = x.y; hs[o + 2u] = x.z; hs[o + 3u] = x.w;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // The last query tiles see the most keys: dispatch them first so the short ones fill the tail.
  let q0 = ((u.q_len + BQ - 1u) / BQ - 1u - wg.x) * BQ;
  let h = wg.y;
  // subgroups are the NSG runs of 32 consecutive invocations (the launcher requires subgroup size 32); matrix
  // offsets derived from sg are uniform per subgroup, which is what the hardware needs (hence the diagnostic off)
  let sg = lid / 32u;
  let lane = lid % 32u;
  let r = lane % 16u;       // softmax: this lane's row of the subgroup's 16
  let half = lane / 16u;    // and its keys 16·half + i

  /*@Q_LOAD@*/

  // Keys this tile needs: up to the last row's position, within kv_len.
  let last_row = min(q0 + BQ, u.q_len) - 1u;
  let key_end = min(u.kv_len, u.q_pos0 + last_row + 1u);
  let row_pos = u.q_pos0 + q0 + sg * 16u + r;

  /*@ACC_INIT@*/
  var m_run = MASKED;
  var l_run = 0.0;     // this lane's keys only; the two lanes of a row are summed at the end
  var alpha = 1.0;

  /*@FETCH_FIRST@*/

  for (var k0 = 0u; k0 < key_end; k0 += BK) {
    workgroupBarrier();   // the previous tile's P·V is done with the tile and the probabilities (the first time: q)
    /*@STORE@*/
    workgroupBarrier();
    /*@FETCH_NEXT@*/

    /*@SCORES@*/
    workgroupBarrier();

    /*@SOFTMAX@*/
    workgroupBarrier();
    if (lid == 0u) {
      var any = 0u;
      for (var i = 0u; i < NSG; i++) { any |= resc[i]; }
      resc_any[0] = any;
    }
    if (workgroupUniformLoad(&resc_any[0]) != 0u) {
      /*@RESCALE@*/
    }

    /*@PV@*/
  }

  let l_row = l_run + subgroupShuffleXor(l_run, 16u);
  let inv = select(0.0, 1.0 / l_row, l_row > 0.0);
  /*@WRITE@*/
}
