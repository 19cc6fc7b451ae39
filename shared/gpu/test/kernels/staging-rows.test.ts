// Which slab rows a store instruction's lanes stage (staging-rows.ts): a count of its shared-memory wavefronts made
// here by hand for the prefill tiles' 32-deep slabs, and the row map as a permutation within its groups.
import test from 'ava';
import { stagingRow, stagingRowSpread, stagingRowWgsl, stagingStoreWavefronts } from '../../src/kernels/matmul/staging-rows.js';

test('staging rows - BK 32 (rows 20 words apart): consecutive rows take 4 wavefronts an x store and 2 a bf16 W one; rows 4 apart, 2 and 1', (t) => {
  // x: 8-byte stores, 16 lanes (2 rows) a phase: rows 0 and 1 cover words 0..15 and 20..35, meeting on banks 0..3
  t.is(stagingStoreWavefronts(32, 40, 4, 1), 4);
  // W: 4-byte stores, 32 lanes (2 rows) a phase, the same overlap
  t.is(stagingStoreWavefronts(32, 40, 2, 1), 2);
  t.is(stagingRowSpread(32, 40, 4, 128), 4);
  t.is(stagingRowSpread(32, 40, 2, 128), 4);
  t.is(stagingStoreWavefronts(32, 40, 4, 4), 2);
  t.is(stagingStoreWavefronts(32, 40, 2, 4), 1);
});

test('staging rows - a phase within one row has nothing to spread, and a slab the groups do not divide keeps its order', (t) => {
  for (const BK of [64, 128]) t.is(stagingRowSpread(BK, BK + 8, 4, 128), 1, `BK ${BK}`);
  t.is(stagingRowSpread(32, 40, 4, 12), 1);
});

test('staging rows - the row map is a permutation of each group of rows, and its WGSL is the same formula', (t) => {
  for (const [nph, d] of [[2, 4], [4, 2], [2, 2], [3, 1]] as const) {
    const n = nph * d * 3;
    const rows = Array.from({ length: n }, (_, slot) => stagingRow(slot, nph, d));
    t.deepEqual([...rows].sort((a, b) => a - b), Array.from({ length: n }, (_, r) => r), `nph ${nph}, d ${d}`);
    for (let slot = 0; slot < n; slot++) t.is(Math.floor(rows[slot]! / (nph * d)), Math.floor(slot / (nph * d)), 'stays in its group');
  }
  // BK 32, x: 2 rows a phase, 4 apart: slots 0, 1 → rows 0, 4; 2, 3 → 1, 5
  t.deepEqual([0, 1, 2, 3, 8].map((s) => stagingRow(s, 2, 4)), [0, 4, 1, 5, 8]);
  t.is(stagingRowWgsl('s', 32, 4, 4), '((s) / 2u % 4u + 4u * ((s) % 2u) + 8u * ((s) / 8u))');
  t.is(stagingRowWgsl('s', 32, 4, 1), 's');
});
