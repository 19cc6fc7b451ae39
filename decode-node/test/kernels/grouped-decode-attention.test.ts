// Grouped MLA decode attention over the paged latent cache against a float64 reference computed here, on
// the rows exactly as the cache stores them (bf16/fp8 rounding included, so every dtype is held to 1e-4).
import test, { type ExecutionContext } from 'ava';
import { Gpu } from '@latentwire/gpu';
import {
  chooseDecodeSplits, decodeSplitsFor, groupedDecodePlan, groupedDecodeWorkgroupBytes, type GroupedDecodeVariant,
} from '../../src/kernels/grouped-decode-attention/index.js';
import { runCase, type Case } from './grouped-decode-attention.fixture.js';

let shared: Promise<Gpu> | null = null;
const testGpu = (): Promise<Gpu> => (shared ??= Gpu.create({ adapter: process.env.WEBGPU_ADAPTER }));

/** Runs a case and asserts it is within 1e-4 of the reference and that the test packs pages as kv-quantize does. */
async function check(t: ExecutionContext, gpu: Gpu, c: Case, what = ''): Promise<number> {
  const { err, label, sameAsQuantizer } = await runCase(gpu, c);
  t.true(err < 1e-4, `${label} splits=${c.splits} ${what}: max rel err ${err}`);
  t.true(sameAsQuantizer, `${label}: test packing differs from quantizeLatentRowsCpu`);
  return err;
}

const LENS = [1, 17, 130];

for (const [r, rope] of [[40, 8], [64, 16]] as const) {
  for (const dtype of ['f32', 'bf16'] as const) {
    test.serial(`r=${r} rope=${rope} ${dtype}: head groups {1,3,8} × page sizes {1,16,64} × splits {1,3}`, async (t) => {
      const gpu = await testGpu();
      let worst = 0;
      for (const headGroup of [1, 3, 8]) {
        for (const pageSize of [1, 16, 64]) {
          for (const splits of [1, 3]) {
            const c: Case = { r, rope, heads: 8, dtype, pageSize, headGroup, splits, lens: LENS, seed: r * 1000 + headGroup * 100 + pageSize + splits };
            worst = Math.max(worst, await check(t, gpu, c));
          }
        }
      }
      t.log(`max rel err ${worst.toExponential(2)}`);
    });
  }
}

test.serial('fp8 caches (e5m2, e4m3 with per-token scales) against the reference on the stored rows', async (t) => {
  const gpu = await testGpu();
  let worst = 0;
  for (const dtype of ['fp8_e5m2', 'fp8_e4m3'] as const) {
    for (const [headGroup, pageSize, splits] of [[3, 16, 3], [8, 1, 1], [1, 64, 3]] as const) {
      const c: Case = { r: 64, rope: 16, heads: 8, dtype, pageSize, headGroup, splits, lens: LENS, seed: 77 + headGroup };
      worst = Math.max(worst, await check(t, gpu, c));
    }
  }
  t.log(`max rel err ${worst.toExponential(2)}`);
});

test.serial('DeepSeek dims r=512 rope=64, 16 heads, few tokens, every dtype', async (t) => {
  const gpu = await testGpu();
  let worst = 0;
  for (const dtype of ['f32', 'bf16', 'fp8_e4m3', 'fp8_e5m2'] as const) {
    for (const splits of [1, 2]) {
      const c: Case = { r: 512, rope: 64, heads: 16, dtype, pageSize: 16, headGroup: 8, splits, lens: [3, 20], seed: 9 };
      worst = Math.max(worst, await check(t, gpu, c));
    }
  }
  t.log(`max rel err ${worst.toExponential(2)}`);
});

test.serial('tile sizes 1, 2, 4, 8, 16 and head group 5 of 8 heads', async (t) => {
  const gpu = await testGpu();
  let worst = 0;
  for (const tileTokens of [1, 2, 4, 8, 16]) {
    for (const headGroup of [5, 8]) {
      const c: Case = { r: 40, rope: 8, heads: 8, dtype: 'bf16', pageSize: 16, headGroup, splits: 3, lens: [5, 130, 33], tileTokens, seed: tileTokens };
      worst = Math.max(worst, await check(t, gpu, c));
    }
  }
  t.log(`max rel err ${worst.toExponential(2)}`);
});

test.serial('workgroup sizes 16..256 (phase B head slices, several items and fetch chunks per thread)', async (t) => {
  const gpu = await testGpu();
  let worst = 0;
  for (const workgroupSize of [16, 32, 64, 256]) {
    for (const [r, rope, headGroup, dtype] of [[64, 16, 8, 'bf16'], [40, 8, 5, 'fp8_e4m3'], [128, 16, 8, 'f32']] as const) {
      const c: Case = {
        r, rope, heads: 8, dtype, pageSize: 16, headGroup, splits: 3, lens: [5, 130, 33], tileTokens: 8, workgroupSize,
        seed: workgroupSize + r,
      };
      worst = Math.max(worst, await check(t, gpu, c, `wg ${workgroupSize}`));
    }
  }
  t.log(`max rel err ${worst.toExponential(2)}`);
});

test.serial('pages written by the kv-quantize GPU kernel are read back right (every dtype)', async (t) => {
  const gpu = await testGpu();
  let worst = 0;
  for (const dtype of ['f32', 'bf16', 'fp8_e5m2', 'fp8_e4m3'] as const) {
    const c: Case = { r: 64, rope: 16, heads: 8, dtype, pageSize: 16, headGroup: 3, splits: 3, lens: LENS, viaQuantizeKernel: true, seed: 11 };
    worst = Math.max(worst, await check(t, gpu, c, 'via kvQuantize'));
  }
  t.log(`max rel err ${worst.toExponential(2)}`);
});

test.serial('pool split over 3 bindings (page id → buffer ⌊p / pagesPerBuffer⌋)', async (t) => {
  const gpu = await testGpu();
  let worst = 0;
  for (const dtype of ['f32', 'fp8_e4m3'] as const) {
    const c: Case = { r: 40, rope: 8, heads: 8, dtype, pageSize: 4, headGroup: 3, splits: 3, lens: LENS, poolBindings: 3, seed: 5 };
    worst = Math.max(worst, await check(t, gpu, c));
  }
  t.log(`max rel err ${worst.toExponential(2)}`);
});

test.serial('empty sequences give 0, and more splits than tokens', async (t) => {
  const gpu = await testGpu();
  let worst = 0;
  for (const splits of [1, 4]) {
    const c: Case = { r: 40, rope: 8, heads: 8, dtype: 'f32', pageSize: 16, headGroup: 3, splits, lens: [0, 2, 0, 1], seed: 3 };
    worst = Math.max(worst, await check(t, gpu, c));
  }
  t.log(`max rel err ${worst.toExponential(2)}`);
});

test.serial('one pipeline serves every batch size, length and split count', async (t) => {
  const gpu = await Gpu.create({ adapter: process.env.WEBGPU_ADAPTER });
  t.teardown(() => gpu.dispose());
  const base = { r: 64, rope: 16, heads: 8, dtype: 'bf16' as const, pageSize: 16, headGroup: 3, tileTokens: 8 };
  const start = gpu.pipelines.size; // the device's own (its occupancy probe)
  await runCase(gpu, { ...base, splits: 1, lens: [1] });
  const before = gpu.pipelines.size - start;
  for (const [lens, splits] of [[[7, 300], 1], [[1, 2, 3, 4, 5, 6, 64], 3], [[129], 5], [[50, 17, 1], 2]] as const) {
    const { err } = await runCase(gpu, { ...base, splits, lens, seed: lens.length });
    t.true(err < 1e-4, `lens ${lens} splits ${splits}: ${err}`);
  }
  // the merge pipeline is new (the first run had 1 split); nothing else is
  t.is(before, 1);
  t.is(gpu.pipelines.size - start, 2);
});

test.serial('helpers: plan, workgroup memory, splits', (t) => {
  const v = (headGroup: number, tileTokens: number): GroupedDecodeVariant => ({
    kvLoraRank: 512, ropeDim: 64, dtype: 'bf16', pageSize: 64, headGroup, tileTokens,
  });
  // r = 512: q of 8 heads 18560 B + an 8-token tile 18560 B + split-K partials 4096 B + probabilities 288 B
  t.is(groupedDecodeWorkgroupBytes(v(8, 8)), 41504);
  const h100 = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024 };
  const lavapipe = { ...h100, maxComputeWorkgroupStorageSize: 32768 };
  const spec = { kvLoraRank: 512, ropeDim: 64, dtype: 'bf16' as const, pageSize: 64, heads: 128 };
  t.like(groupedDecodePlan({ ...spec, limits: h100 }), { headGroup: 8, tileTokens: 8, workgroupSize: 256 });
  t.like(groupedDecodePlan({ ...spec, limits: lavapipe }), { headGroup: 8, tileTokens: 4, workgroupSize: 128 });
  t.like(groupedDecodePlan({ ...spec, heads: 3, limits: lavapipe }), { headGroup: 3, tileTokens: 8 });
  t.throws(() => groupedDecodePlan({ ...spec, headGroup: 32, limits: h100 }), { instanceOf: RangeError });
  t.is(groupedDecodeWorkgroupBytes(v(8, 8)) <= 49152, true);
  // 128 heads in groups of 8 = 16 groups: batch 1 at 4K wants ceil(264 / 16) = 17 splits; batch 32 fills the GPU
  t.is(chooseDecodeSplits({ batch: 1, heads: 128, headGroup: 8, maxContext: 4096, targetWorkgroups: 264 }), 17);
  t.is(chooseDecodeSplits({ batch: 1, heads: 16, headGroup: 8, maxContext: 1024, targetWorkgroups: 264 }), 16);
  t.is(chooseDecodeSplits({ batch: 1, heads: 128, headGroup: 8, maxContext: 16384, targetWorkgroups: 264 }), 17);
  t.is(chooseDecodeSplits({ batch: 32, heads: 128, headGroup: 8, maxContext: 16384, targetWorkgroups: 264 }), 1);
  t.is(chooseDecodeSplits({ batch: 4, heads: 16, headGroup: 8, maxContext: 100, targetWorkgroups: 264 }), 1);
  t.is(chooseDecodeSplits({ batch: 1, heads: 16, headGroup: 8, maxContext: 16384, targetWorkgroups: 264 }), 64);
  // the subgroup-matrix kernel: one wave of the 132 slots, power-of-two counts (the H200 sweep in decodeSplitTarget)
  const mma = { ...v(16, 32), engine: 'subgroup-matrix' as const };
  const slots = 132;
  t.is(decodeSplitsFor(mma, { batch: 32, heads: 16, maxContext: 1024, workgroupSlots: slots }), 4);
  t.is(decodeSplitsFor(mma, { batch: 64, heads: 16, maxContext: 4096, workgroupSlots: slots }), 2);
  t.is(decodeSplitsFor(mma, { batch: 128, heads: 16, maxContext: 1024, workgroupSlots: slots }), 1);
  t.is(decodeSplitsFor(mma, { batch: 1, heads: 128, maxContext: 16384, workgroupSlots: slots }), 16);
  t.is(decodeSplitsFor(mma, { batch: 1, heads: 16, maxContext: 16384, workgroupSlots: slots }), 64);
  // the portable kernel keeps its two waves and exact counts
  t.is(decodeSplitsFor(v(8, 8), { batch: 1, heads: 128, maxContext: 4096, workgroupSlots: slots }), 17);
});

test.after.always(async () => {
  if (shared) (await shared).dispose();
});
