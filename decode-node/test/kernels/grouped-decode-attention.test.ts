// Grouped MLA decode attention over the paged latent cache against a float64 reference computed here, on
// the rows exactly as the cache stores them (bf16/fp8 rounding included, so every dtype is held to 1e-4).
import { seededRandom } from '@latentwire/testing';
import test, { type ExecutionContext } from 'ava';
import { Gpu } from '@latentwire/gpu';
import { kvQuantize, quantizeLatentRowsCpu } from '@latentwire/gpu/kernels';
import { type KvDtype, type LatentKvLayout } from '@latentwire/protocol';
import { encodeE4M3, encodeE5M2, decodeE4M3, decodeE5M2, f32Bits, f32FromBits } from '@latentwire/model';
import {
  chooseDecodeSplits, groupedDecodeAttention, groupedDecodeLayout, groupedDecodePlan, groupedDecodeScratchBytes,
  groupedDecodeWorkgroupBytes, type GroupedDecodeVariant,
} from '../../src/kernels/grouped-decode-attention/index.js';

let shared: Promise<Gpu> | null = null;
const testGpu = (): Promise<Gpu> => (shared ??= Gpu.create({ adapter: process.env.WEBGPU_ADAPTER }));

const rng = seededRandom;

/** Values in ±[0.1, 1) · scale: random and never zero. */
function nonZero(n: number, rand: () => number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() < 0.5 ? -1 : 1) * (0.1 + 0.9 * rand()) * scale;
  return out;
}

function bf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Writes `rows` (token t = rows[t*(r+rope) ...]) of a sequence whose page table is `pages` into `cache`, as
 * shared/protocol/src/kv/latent-layout.ts lays them out, and returns what the cache holds, decoded (float64).
 */
function writeRows(l: LatentKvLayout, rows: Float64Array, count: number, pages: readonly number[], cache: Uint32Array): Float64Array {
  const { kvLoraRank: r, ropeDim: rope, pageSize } = l;
  const width = r + rope;
  const stored = new Float64Array(count * width);
  for (let t = 0; t < count; t++) {
    const page = pages[Math.floor(t / pageSize)]!;
    const slot = t % pageSize;
    const base = (page * l.pageBytes) / 4;
    const row = base + (slot * l.rowBytes) / 4;
    cache.fill(0, row, row + l.rowBytes / 4);
    let scale = 1;
    if (l.scales.kind !== 'none') {
      let amax = 0;
      for (let i = 0; i < r; i++) amax = Math.max(amax, Math.abs(Math.fround(rows[t * width + i]!)));
      scale = amax === 0 ? 1 : Math.fround(amax * Math.fround(1 / 448));
      cache[base + l.scalesOffset / 4 + slot] = f32Bits(scale);
    }
    const section = (type: string, first: number, n: number, w0: number, sc: number) => {
      for (let i = 0; i < n; i++) {
        const x = Math.fround(rows[t * width + first + i]!);
        let v: number;
        switch (type) {
          case 'f32':
            cache[w0 + i] = f32Bits(x);
            v = x;
            break;
          case 'bf16': {
            const h = bf16Bits(f32Bits(x));
            cache[w0 + (i >> 1)]! |= h << (16 * (i & 1));
            v = f32FromBits(h << 16);
            break;
          }
          case 'fp8_e5m2': {
            const code = encodeE5M2(x);
            cache[w0 + (i >> 2)]! |= code << (8 * (i & 3));
            v = decodeE5M2(code);
            break;
          }
          default: {
            const code = encodeE4M3(Math.fround(x / sc));
            cache[w0 + (i >> 2)]! |= code << (8 * (i & 3));
            v = Math.fround(decodeE4M3(code) * sc);
          }
        }
        stored[t * width + first + i] = v;
      }
    };
    section(l.latentType, 0, r, row, scale);
    section(l.ropeType, r, rope, row + l.latentBytes / 4, 1);
  }
  return stored;
}

interface Case {
  readonly r: number;
  readonly rope: number;
  readonly heads: number;
  readonly dtype: KvDtype;
  readonly pageSize: number;
  readonly headGroup: number;
  readonly splits: number;
  readonly lens: readonly number[];
  readonly tileTokens?: number;
  readonly workgroupSize?: number;
  readonly poolBindings?: number;
  readonly seed?: number;
  /** Write the pages with shared's kv-quantize GPU kernel instead of uploading the test's own packing. */
  readonly viaQuantizeKernel?: boolean;
}

interface Built {
  readonly q: Float64Array;
  readonly stored: Float64Array[];
  readonly scale: number;
  readonly bufs: GPUBuffer[];
  /** The test's packing equals quantizeLatentRowsCpu's, word for word. */
  readonly sameAsQuantizer: boolean;
  readonly args: Omit<Parameters<typeof groupedDecodeAttention>[0], 'variant' | 'numSplits'>;
}

/** Random q and cache for `c`; page ids are shuffled over a pool with spare pages (non-contiguous). */
async function build(gpu: Gpu, c: Case, variant: GroupedDecodeVariant): Promise<Built> {
  const rand = rng(c.seed ?? 1234);
  const l = groupedDecodeLayout(variant);
  const width = c.r + c.rope;
  const batch = c.lens.length;
  const pagesPer = c.lens.map((n) => Math.ceil(n / c.pageSize));
  const totalPages = pagesPer.reduce((a, b) => a + b, 0) * 2 + 3;
  const ids = Array.from({ length: totalPages }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  const cache = new Uint32Array((totalPages * l.pageBytes) / 4);
  // fill unused pages with garbage that must never be read (huge values would show up in the result)
  for (let i = 0; i < cache.length; i++) cache[i] = f32Bits(1e30);
  const table: number[] = [];
  const offsets: number[] = [];
  const stored: Float64Array[] = [];
  const seqRows: { rows: Float32Array; pages: number[] }[] = [];
  const cpuCache = cache.slice();
  let next = 0;
  for (let b = 0; b < batch; b++) {
    // offsets leave a gap of one entry between rows, to check they are honoured
    offsets.push(table.length + 1);
    table.push(0xffffffff);
    const pages = ids.slice(next, next + pagesPer[b]!);
    next += pagesPer[b]!;
    table.push(...pages);
    const rows = nonZero(c.lens[b]! * width, rand);
    stored.push(writeRows(l, rows, c.lens[b]!, pages, cache));
    const f32Rows = new Float32Array(rows);
    quantizeLatentRowsCpu(l, f32Rows, c.lens[b]!, width, pages, 0, cpuCache);
    seqRows.push({ rows: f32Rows, pages });
  }
  const sameAsQuantizer = cache.every((w, i) => w === cpuCache[i]);
  // q ×3 so softmaxes are peaked (score std ≈ 1), not near-uniform
  const q = nonZero(batch * c.heads * width, rand, 3);
  const pools = variant.poolBindings ?? 1;
  const pagesPerBuffer = Math.ceil(totalPages / pools);
  const poolBufs = Array.from({ length: pools }, (_, k) => {
    const words = (pagesPerBuffer * l.pageBytes) / 4;
    const part = cache.slice(k * words, Math.min(cache.length, (k + 1) * words));
    return gpu.upload(`pool${k}`, part.length > 0 ? part : new Uint32Array(4));
  });
  const scratchBufs: GPUBuffer[] = [];
  if (c.viaQuantizeKernel) {
    if (pools !== 1) throw new RangeError('viaQuantizeKernel: one pool buffer only');
    const garbage = new Uint32Array(cache.length).fill(f32Bits(1e30));
    gpu.write(poolBufs[0]!, garbage);
    const programs = seqRows.filter((sr) => sr.rows.length > 0).map((sr) => {
      const src = gpu.upload('rows', sr.rows);
      const pageIds = gpu.upload('pageIds', new Uint32Array(sr.pages));
      scratchBufs.push(src, pageIds);
      return kvQuantize({ layout: l, src, rows: sr.rows.length / width, pageIds, cache: poolBufs[0]! });
    });
    await gpu.run(programs);
  }
  const maxSplits = Math.max(c.splits, 1);
  const scratch = groupedDecodeScratchBytes({ batch, heads: c.heads, kvLoraRank: c.r, numSplits: maxSplits });
  const bufs = [
    gpu.upload('q', new Float32Array(q)),
    gpu.upload('lens', new Uint32Array(c.lens)),
    gpu.upload('offsets', new Uint32Array(offsets)),
    gpu.upload('table', new Uint32Array(table)),
    gpu.buffer('out', batch * c.heads * c.r * 4),
    gpu.buffer('lse', scratch.lseBytes),
    gpu.buffer('partial', Math.max(16, scratch.partialBytes)),
    ...poolBufs,
    ...scratchBufs,
  ];
  const [qb, lens, offs, tab, out, lse, partial] = bufs as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
  return {
    q, stored, scale: 1 / Math.sqrt(width + 8), bufs, sameAsQuantizer,
    args: {
      q: qb, seqLens: lens, pageTableOffsets: offs, pageTable: tab, pools: poolBufs, pagesPerBuffer, out, lse, partial,
      batch, heads: c.heads, scale: 1 / Math.sqrt(width + 8),
    },
  };
}

/** float64 reference: ō[b, h] = Σ_t softmax_t((q_lat·c_t + q_pe·k_pe_t)·scale) c_t. */
function reference(c: Case, b: Built): Float64Array {
  const width = c.r + c.rope;
  const out = new Float64Array(c.lens.length * c.heads * c.r);
  for (let s = 0; s < c.lens.length; s++) {
    const n = c.lens[s]!;
    const rows = b.stored[s]!;
    for (let h = 0; h < c.heads; h++) {
      const q0 = (s * c.heads + h) * width;
      const scores = new Float64Array(n);
      let m = -Infinity;
      for (let t = 0; t < n; t++) {
        let d = 0;
        for (let i = 0; i < width; i++) d += Math.fround(b.q[q0 + i]!) * rows[t * width + i]!;
        scores[t] = d * b.scale;
        m = Math.max(m, scores[t]!);
      }
      let sum = 0;
      for (let t = 0; t < n; t++) sum += (scores[t] = Math.exp(scores[t]! - m));
      const o0 = (s * c.heads + h) * c.r;
      for (let t = 0; t < n; t++) {
        const p = scores[t]! / sum;
        for (let i = 0; i < c.r; i++) out[o0 + i] += p * rows[t * width + i]!;
      }
    }
  }
  return out;
}

function variantOf(gpu: Gpu, c: Case): GroupedDecodeVariant {
  if (c.tileTokens) {
    return {
      kvLoraRank: c.r, ropeDim: c.rope, dtype: c.dtype, pageSize: c.pageSize, headGroup: c.headGroup,
      tileTokens: c.tileTokens, poolBindings: c.poolBindings ?? 1, workgroupSize: c.workgroupSize,
    };
  }
  return groupedDecodePlan({
    kvLoraRank: c.r, ropeDim: c.rope, dtype: c.dtype, pageSize: c.pageSize, heads: c.heads, headGroup: c.headGroup,
    limits: gpu.limits, poolBindings: c.poolBindings,
  });
}

async function runCase(gpu: Gpu, c: Case): Promise<{ err: number; label: string; sameAsQuantizer: boolean }> {
  const variant = variantOf(gpu, c);
  const b = await build(gpu, c, variant);
  try {
    const programs = groupedDecodeAttention({ ...b.args, variant, numSplits: c.splits });
    await gpu.run(programs);
    const got = await gpu.readF32(b.args.out as GPUBuffer, 0, c.lens.length * c.heads * c.r);
    const want = reference(c, b);
    let err = 0;
    for (let i = 0; i < want.length; i++) {
      const e = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
      err = Number.isNaN(e) ? Infinity : Math.max(err, e);
    }
    return { err, label: programs[0]!.shader.label, sameAsQuantizer: b.sameAsQuantizer };
  } finally {
    gpu.destroy(...b.bufs);
  }
}

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
  await runCase(gpu, { ...base, splits: 1, lens: [1] });
  const before = gpu.pipelines.size;
  for (const [lens, splits] of [[[7, 300], 1], [[1, 2, 3, 4, 5, 6, 64], 3], [[129], 5], [[50, 17, 1], 2]] as const) {
    const { err } = await runCase(gpu, { ...base, splits, lens, seed: lens.length });
    t.true(err < 1e-4, `lens ${lens} splits ${splits}: ${err}`);
  }
  // the merge pipeline is new (the first run had 1 split); nothing else is
  t.is(before, 1);
  t.is(gpu.pipelines.size, 2);
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
  t.is(chooseDecodeSplits({ batch: 1, heads: 128, headGroup: 8, maxContext: 4096 }), 17);
  t.is(chooseDecodeSplits({ batch: 1, heads: 16, headGroup: 8, maxContext: 1024 }), 16);
  t.is(chooseDecodeSplits({ batch: 1, heads: 128, headGroup: 8, maxContext: 16384 }), 17);
  t.is(chooseDecodeSplits({ batch: 32, heads: 128, headGroup: 8, maxContext: 16384 }), 1);
  t.is(chooseDecodeSplits({ batch: 4, heads: 16, headGroup: 8, maxContext: 100 }), 1);
  t.is(chooseDecodeSplits({ batch: 1, heads: 16, headGroup: 8, maxContext: 16384 }), 64);
});

test.after.always(async () => {
  if (shared) (await shared).dispose();
});
