import test from 'ava';
import {
  MLA_PREFILL_TILINGS,
  mlaPrefillAttention,
  mlaPrefillAttentionCost,
  mlaPrefillTiles,
  mlaPrefillWorkgroupBytes,
} from '../../src/kernels/mla-prefill-attention/mla-prefill-attention.js';
import { testGpu } from '../../src/testing.js';
import { maxAbsDiff } from '@latentwire/testing';
import { FIXTURE, ODD, SMALL, V2_LITE, attentionRef, inputs, runGpu, runStrided, scaleOf } from './mla-prefill-attention.fixture.js';

const TOL = 1e-4;

for (const heads of [1, 3]) {
  for (const T of [1, 5, 33, 100]) {
    test(`mla-prefill-attention - matches float64, H ${heads}, T ${T}, nope 24 rope 8 v 20`, async (t) => {
      const gpu = await testGpu();
      const c = { ...SMALL, heads };
      const x = inputs(c, T, 10 * T + heads);
      const y = await runGpu(gpu, c, x, { qLen: T, scale: scaleOf(c) });
      t.true(maxAbsDiff(y, attentionRef(c, x, 0, T, scaleOf(c))) < TOL);
    });
  }
}

for (const T of [1, 37, 70]) {
  test(`mla-prefill-attention - matches float64 on the tiny fixture's dims, T ${T}`, async (t) => {
    const gpu = await testGpu();
    const x = inputs(FIXTURE, T, 7 + T);
    const y = await runGpu(gpu, FIXTURE, x, { qLen: T, scale: scaleOf(FIXTURE) });
    t.true(maxAbsDiff(y, attentionRef(FIXTURE, x, 0, T, scaleOf(FIXTURE))) < TOL);
  });
}

// Head dims and tiling are both compile-time: each tiling is one shader here, on the smallest odd dims (the
// tests above run the default tiling on SMALL and FIXTURE dims; a second dims set per tiling doubled this
// file's compiles, minutes on lavapipe).
for (const tiles of MLA_PREFILL_TILINGS) {
  test(`mla-prefill-attention - tiling ${tiles.bq}x${tiles.bk}/${tiles.threads} matches float64 on odd dims`, async (t) => {
    const gpu = await testGpu();
    const c = ODD, T = 45;
    const x = inputs(c, T, 3 + T);
    const y = await runGpu(gpu, c, x, { qLen: T, scale: scaleOf(c), tiles });
    t.true(maxAbsDiff(y, attentionRef(c, x, 0, T, scaleOf(c))) < TOL, `dims ${JSON.stringify(c)}`);
  });
}

test('mla-prefill-attention - DeepSeek-V2-Lite head dims, with the largest tiling the device allows', async (t) => {
  const gpu = await testGpu();
  const c = { ...V2_LITE, heads: 2 };
  const tiles = mlaPrefillTiles(c, gpu.limits);
  t.true(mlaPrefillWorkgroupBytes(c, tiles) <= gpu.limits.maxComputeWorkgroupStorageSize);
  const T = 21; // more than one 16-row tile, ragged
  const x = inputs(c, T, 99);
  const y = await runGpu(gpu, c, x, { qLen: T, scale: scaleOf(c), tiles });
  t.true(maxAbsDiff(y, attentionRef(c, x, 0, T, scaleOf(c))) < TOL);
});

test('mla-prefill-attention - large scores stay finite (online softmax subtracts the running max)', async (t) => {
  const gpu = await testGpu();
  const c = { ...SMALL, heads: 2 };
  const T = 40;
  const x = inputs(c, T, 5, 4); // |q| up to 4: scores reach the hundreds at scale 1
  const y = await runGpu(gpu, c, x, { qLen: T, scale: 1 });
  const want = attentionRef(c, x, 0, T, 1);
  t.true(y.every(Number.isFinite));
  t.true(maxAbsDiff(y, want) < 1e-3);
});

test('mla-prefill-attention - a chunk at a prefix offset sees the prefix and itself causally', async (t) => {
  const gpu = await testGpu();
  const c = { ...SMALL, heads: 3 };
  const total = 48, qPos0 = 29, qLen = 19;
  const x = inputs(c, total, 77);
  const y = await runGpu(gpu, c, x, { qPos0, qLen, scale: scaleOf(c) });
  t.true(maxAbsDiff(y, attentionRef(c, x, qPos0, qLen, scaleOf(c))) < TOL);
  // chunk-by-chunk equals one shot
  const whole = await runGpu(gpu, c, x, { qLen: total, scale: scaleOf(c) });
  const rowWidth = c.heads * c.v;
  t.true(maxAbsDiff(y, whole.subarray(qPos0 * rowWidth)) < 1e-5);
});

test('mla-prefill-attention - kvLen caps the keys read', async (t) => {
  const gpu = await testGpu();
  const c = ODD;
  const T = 30, kvLen = 11;
  const x = inputs(c, T, 123);
  const y = await runGpu(gpu, c, x, { qLen: T, kvLen, scale: scaleOf(c) });
  t.true(maxAbsDiff(y, attentionRef(c, x, 0, T, scaleOf(c), kvLen)) < TOL);
});

test('mla-prefill-attention - strided layouts (latent inside wider rows, padded output rows)', async (t) => {
  const gpu = await testGpu();
  const c = { ...SMALL, heads: 2 };
  const { got, want } = await runStrided(gpu, c, 23, 31, { latentRow: c.r + c.rope + 6, kpeOffset: c.r + 3, outRow: c.heads * c.v + 4 });
  t.true(maxAbsDiff(got, want) < TOL);
});

// serial: AVA runs serial tests before the concurrent ones, so no other test compiles meanwhile
test.serial('mla-prefill-attention - every prompt length shares one pipeline', async (t) => {
  const gpu = await testGpu();
  const c = { ...FIXTURE, heads: 2 };
  const x = inputs(c, 64, 8);
  await runGpu(gpu, c, x, { qLen: 7, scale: scaleOf(c) });
  const size = gpu.pipelines.size;
  await runGpu(gpu, c, x, { qLen: 64, scale: scaleOf(c) });
  await runGpu(gpu, c, x, { qPos0: 20, qLen: 13, scale: scaleOf(c) });
  t.is(gpu.pipelines.size, size);
});

test('mla-prefill-attention - launcher validates its inputs', async (t) => {
  const gpu = await testGpu();
  const c = SMALL;
  const small = gpu.buffer('small', 64);
  const big = gpu.buffer('big', 1 << 16);
  const base = {
    q: big, kv: big, latent: big, out: big, nope: c.nope, rope: c.rope, v: c.v, heads: 1, kvLoraRank: c.r, qLen: 10,
    scale: 0.1, limits: gpu.limits,
  };
  t.notThrows(() => mlaPrefillAttention(base));
  t.throws(() => mlaPrefillAttention({ ...base, q: small }), { message: /q holds/ });
  t.throws(() => mlaPrefillAttention({ ...base, out: small }), { message: /out holds/ });
  t.throws(() => mlaPrefillAttention({ ...base, limits: undefined }), { message: /tiles or limits/ });
  t.throws(() => mlaPrefillAttention({ ...base, tiles: { bq: 6, bk: 8, threads: 32 } }), { message: /tiling/ });
  t.throws(() => mlaPrefillAttention({ ...base, tiles: { bq: 32, bk: 8, threads: 128 } }), { message: /tiling/ });
  t.throws(() => mlaPrefillAttention({ ...base, rope: 0 }));
  t.throws(() => mlaPrefillAttention({ ...base, qLen: 2.5 }));
  const p = mlaPrefillAttention({ ...base, qLen: 0 });
  t.is(p.workgroups[0], 0);
  gpu.destroy(small, big);
});

test('mla-prefill-attention - tiling choice and workgroup memory for DeepSeek-V2 heads', (t) => {
  const h100 = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024 };
  const lavapipe = { ...h100, maxComputeWorkgroupStorageSize: 32768 };
  t.deepEqual(mlaPrefillTiles(V2_LITE, h100), { bq: 32, bk: 16, threads: 128 });
  t.is(mlaPrefillWorkgroupBytes(V2_LITE, { bq: 32, bk: 16, threads: 128 }), 41728);
  t.deepEqual(mlaPrefillTiles(V2_LITE, lavapipe), { bq: 16, bk: 16, threads: 64 });
  const cost = mlaPrefillAttentionCost({ ...V2_LITE, kvLoraRank: V2_LITE.r, qLen: 4, qPos0: 2 });
  t.is(cost.pairs, 16 * (3 + 4 + 5 + 6));
  t.is(cost.flops, 2 * cost.pairs * (192 + 128));
});
