// The bank-spread K order of the subgroup-matrix kernels' staged slabs (slab-order.ts), against a count made here
// by hand for the prefill tiles' BK = 32 slabs, and as a permutation whose chunks keep constant value offsets.
import test from 'ava';
import { slabChunkWgsl, slabColumn, slabInterleave, slabStoreWavefronts } from '../../src/kernels/matmul/slab-order.js';

test('slab order - BK 32 in K order: x stores take 3 wavefronts, bf16 W stores 2; interleaved by 4, one each', (t) => {
  // K order, x: 8 lanes a row, 4 rows a warp at 20-word strides (banks 0, 20, 8, 28): bank 0 holds words of rows 0, 1, 3
  t.is(slabStoreWavefronts(32, 40, 4, 1), 3);
  // W: 16 lanes a row, rows 0 and 1 at words 0..15 and 20..35: words 32..35 share banks 0..3 with row 0
  t.is(slabStoreWavefronts(32, 40, 2, 1), 2);
  t.is(slabInterleave(32, 40, [4, 2]), 4);
  t.is(slabStoreWavefronts(32, 40, 4, 4), 1);
  t.is(slabStoreWavefronts(32, 40, 2, 4), 1);
});

test('slab order - every slab depth the kernels use reaches one wavefront a store for x and bf16 W', (t) => {
  for (const BK of [16, 32, 64, 128]) {
    const P = slabInterleave(BK, BK + 8, [4, 2]);
    t.is(slabStoreWavefronts(BK, BK + 8, 4, P), 1, `BK ${BK}, x`);
    t.is(slabStoreWavefronts(BK, BK + 8, 2, P), 1, `BK ${BK}, W`);
    t.true(slabStoreWavefronts(BK, BK + 8, 4, 1) >= 2, `BK ${BK}: K order has conflicts to remove`);
  }
});

test('slab order - a permutation of the slab columns whose chunks keep constant offsets', (t) => {
  for (const BK of [16, 32, 64, 128]) {
    for (let P = 1; P <= BK; P *= 2) {
      const cols = Array.from({ length: BK }, (_, k) => slabColumn(BK, P, k));
      t.deepEqual([...cols].sort((a, b) => a - b), Array.from({ length: BK }, (_, k) => k), `BK ${BK}, P ${P}: a permutation`);
      for (const chunk of [1, 2, 4]) {
        const c = slabChunkWgsl(BK, P, chunk);
        for (let k = 0; k < BK; k += chunk) for (let e = 0; e < chunk; e++) t.is(slabColumn(BK, P, k) + c.step(e), cols[k + e]);
      }
    }
  }
});

test('slab order - the WGSL of a chunk\'s first column is slabColumn\'s formula (K itself in K order)', (t) => {
  t.is(slabChunkWgsl(32, 1, 4).first('xk'), 'xk');
  t.is(slabChunkWgsl(32, 4, 4).first('xk'), '((xk) % 4u) * 8u + (xk) / 4u');
  t.throws(() => slabChunkWgsl(32, 4, 3), { instanceOf: RangeError, message: /apart/ });
});
