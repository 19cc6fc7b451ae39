// kv-quantize / kv-dequantize against the TypeScript codec (latent-row-cpu.ts on fp8.ts, itself checked
// against PyTorch's tables), on awkward sizes, page sizes, partial pages, appends and scattered page ids,
// for every cache dtype; plus round-trip error bounds against the original f32 rows, per dtype.
import test from 'ava';
import { kvDequantize, kvQuantize } from '../../src/kernels/kv-quantize/index.js';
import { dequantizeLatentRowsCpu, latentScale, quantizeLatentRowsCpu } from '../../src/kernels/kv-quantize/latent-row-cpu.js';
import { decodeE4M3, f32FromBits } from '@latentwire/model';
import { KV_DTYPES, parseKvDtype, type KvDtype } from '@latentwire/protocol';
import { assertSameLayout, latentKvLayout, pagesFor, type LatentKvLayout } from '@latentwire/protocol';
import { testGpu } from '../../src/testing.js';
import { randomArray, rng } from '@latentwire/testing';

test('kv layout - DeepSeek sizes per dtype', (t) => {
  const sizes = (dtype: KvDtype) => {
    const l = latentKvLayout({ kvLoraRank: 512, ropeDim: 64, pageSize: 64, dtype });
    return [l.rowBytes, l.tokenBytes, l.scalesOffset, l.pageBytes];
  };
  t.deepEqual(sizes('fp8_e4m3'), [640, 644, 64 * 640, 64 * 644]);
  t.deepEqual(sizes('fp8_e5m2'), [576, 576, 64 * 576, 64 * 576]);
  t.deepEqual(sizes('bf16'), [1152, 1152, 64 * 1152, 64 * 1152]);
  t.deepEqual(sizes('f32'), [2304, 2304, 64 * 2304, 64 * 2304]);
  const odd = latentKvLayout({ kvLoraRank: 41, ropeDim: 3, pageSize: 5, dtype: 'fp8_e4m3' });
  t.deepEqual([odd.latentBytes, odd.ropeBytes, odd.rowBytes, odd.pageBytes], [44, 8, 52, 5 * 56]);
  t.is(pagesFor(odd, 11), 3);
  t.throws(() => latentKvLayout({ kvLoraRank: 0, ropeDim: 64, pageSize: 16, dtype: 'bf16' }), { message: /kvLoraRank=0/ });
  t.throws(() => assertSameLayout(odd, latentKvLayout({ ...odd, dtype: 'fp8_e5m2' })), { message: /mismatch/ });
});

test('kv dtype - parses KV_CACHE_DTYPE values and names the bad one', (t) => {
  for (const d of KV_DTYPES) t.is(parseKvDtype(d), d);
  t.is(parseKvDtype(' FP8 '), 'fp8_e4m3');
  t.is(parseKvDtype('e5m2'), 'fp8_e5m2');
  t.throws(() => parseKvDtype('int8'), { message: /KV_CACHE_DTYPE="int8".*fp8_e4m3, fp8_e5m2, bf16, f32/ });
});

test('kv quantize - one pipeline per dtype whatever the sizes', (t) => {
  const fake = {} as GPUBuffer; // programs are pure data: no GPU needed to compare them
  for (const dtype of KV_DTYPES) {
    const a = kvQuantize({ layout: latentKvLayout({ kvLoraRank: 40, ropeDim: 8, pageSize: 1, dtype }), src: fake, rows: 3, pageIds: fake, cache: fake });
    const b = kvQuantize({ layout: latentKvLayout({ kvLoraRank: 512, ropeDim: 64, pageSize: 64, dtype }), src: fake, rows: 9, pageIds: fake, cache: fake, tokenOffset: 5 });
    t.is(a.shader.source, b.shader.source);
    t.is(a.shader.label, `kv_quantize_${dtype}`);
  }
});

/** Rows like the prefill's: latents ~±2, roped keys wider, a few near-zero values and one all-zero row. */
function latentRows(count: number, stride: number, r: number, seed: number): Float32Array {
  const rows = Float32Array.from(randomArray(count * stride, seed, 2));
  const big = randomArray(count * stride, seed + 1, 6);
  for (let t = 0; t < count; t++) {
    for (let i = r; i < stride; i++) rows[t * stride + i] = big[t * stride + i]!;
    rows[t * stride + (t % r)] = rows[t * stride + (t % r)]! * 1e-5;
  }
  rows.fill(0, 2 * stride, 2 * stride + r); // row 2: zero latent → scale 1
  return rows;
}

/** Distinct, shuffled page ids with gaps, in a pool of `pool` pages. */
function scatteredPages(n: number, pool: number, seed: number): Uint32Array {
  const r = rng(seed);
  const ids = Array.from({ length: pool }, (_, i) => i);
  for (let i = pool - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [ids[i], ids[j]] = [ids[j]!, ids[i]!]; }
  return Uint32Array.from(ids.slice(0, n));
}

/**
 * GPU cache words vs CPU ones. fp8_e4m3 divides by the scale on the GPU, where WGSL's f32 division may be
 * off by an ulp: a code may then differ by one step, but only for values within 2^-20 of a rounding tie.
 */
function compareCaches(t: import('ava').ExecutionContext, l: LatentKvLayout, gpu: Uint32Array, cpu: Uint32Array,
  rows: Float32Array, stride: number, pageIds: Uint32Array, count: number): number {
  let nearTies = 0;
  if (l.dtype === 'fp8_e4m3') {
    for (let tok = 0; tok < count; tok++) {
      const base = (pageIds[Math.floor(tok / l.pageSize)]! * l.pageBytes) / 4, slot = tok % l.pageSize;
      const row = base + (slot * l.rowBytes) / 4;
      const scale = f32FromBits(cpu[base + l.scalesOffset / 4 + slot]!);
      for (let i = 0; i < l.kvLoraRank; i++) {
        const w = row + (i >> 2), sh = 8 * (i & 3);
        const a = (cpu[w]! >>> sh) & 0xff, b = (gpu[w]! >>> sh) & 0xff;
        if (a === b) continue;
        const q = rows[tok * stride + i]! / scale, mid = (decodeE4M3(a) + decodeE4M3(b)) / 2;
        if (Math.abs(a - b) === 1 && Math.abs(q - mid) <= 2 ** -20 * Math.abs(mid)) {
          cpu[w] = ((cpu[w]! & ~(0xff << sh)) | (b << sh)) >>> 0;
          nearTies++;
        }
      }
    }
  }
  let bad = 0;
  for (let i = 0; i < cpu.length; i++) if (cpu[i] !== gpu[i]) bad++;
  t.is(bad, 0, `${bad} cache words differ`);
  return nearTies;
}

/** |x̂ − x| bounds for one value in a section of `type` (scale: the row's e4m3 scale). */
function bound(type: string, x: number, scale: number): number {
  const ax = Math.abs(x);
  switch (type) {
    case 'f32': return 0;
    case 'bf16': return 2 ** -8 * ax; // 7 mantissa bits: half an ulp
    case 'fp8_e5m2': return Math.max(2 ** -3 * ax, 2 ** -17);
    default: return (2 ** -4 * ax + 2 ** -10 * scale) * (1 + 1e-6); // half a mantissa step, or half the subnormal step
  }
}

const SHAPES = [[40, 8], [512, 64]] as const;
const PAGES = [[1, 7], [16, 37], [64, 150]] as const; // page size, tokens (the last page partly filled)

for (const dtype of KV_DTYPES) {
  test(`kv quantize - pages equal the TypeScript codec, appends and scattered pages (${dtype})`, async (t) => {
    const gpu = await testGpu();
    for (const [r, rope] of SHAPES) for (const [pageSize, count] of PAGES) {
      const l = latentKvLayout({ kvLoraRank: r, ropeDim: rope, pageSize, dtype });
      const width = r + rope, stride = width + 3; // strided source rows
      const rows = latentRows(count, stride, r, r + pageSize);
      const nPages = pagesFor(l, count), pool = 2 * nPages + 3;
      const pageIds = scatteredPages(nPages, pool, pageSize);
      const garbage = new Uint32Array((pool * l.pageBytes) / 4).fill(0xdeadbeef); // untouched words must stay
      const src = gpu.upload('kv rows', rows), ids = gpu.upload('kv page ids', pageIds), cache = gpu.upload('kv cache', garbage);
      // two writes: the prompt's first rows, then an append that starts mid-page
      const first = Math.floor(count / 2) + 1;
      await gpu.run([
        kvQuantize({ layout: l, src, rows: first, srcStride: stride, pageIds: ids, cache }),
        kvQuantize({ layout: l, src, rows: count - first, srcOffset: first * stride, srcStride: stride, pageIds: ids, tokenOffset: first, cache }),
      ]);
      const got = await gpu.readU32(cache, 0, garbage.length);
      const want = garbage.slice();
      quantizeLatentRowsCpu(l, rows, count, stride, pageIds, 0, want);
      const ties = compareCaches(t, l, got, want, rows, stride, pageIds, count);
      if (ties > 0) t.log(`${dtype} r=${r} page ${pageSize}: ${ties} codes one step off at near-ties (GPU division)`);

      // back to f32 on the GPU (a window at an offset, into strided output) vs the CPU reading the same pages
      const out = gpu.buffer('kv out', count * stride * 4);
      const from = 3 % count;
      await gpu.run([kvDequantize({ layout: l, cache, pageIds: ids, tokenOffset: from, rows: count - from, out, outStride: stride })]);
      const back = await gpu.readF32(out, 0, count * stride);
      const cpuBack = dequantizeLatentRowsCpu(l, got, pageIds, 0, count);
      let badBits = 0, worst = 0;
      for (let tok = from; tok < count; tok++) {
        const scale = l.scales.kind === 'none' ? 1 : latentScale(rows.subarray(tok * stride, tok * stride + r));
        for (let i = 0; i < width; i++) {
          const g = back[(tok - from) * stride + i]!, x = rows[tok * stride + i]!;
          if (!Object.is(g, cpuBack[tok * width + i]!)) badBits++;
          const b = bound(i < r ? l.latentType : l.ropeType, x, scale);
          worst = Math.max(worst, Math.abs(g - x) - b);
        }
      }
      t.is(badBits, 0, `${dtype} r=${r} page ${pageSize}: dequantized values differ from the CPU's`);
      t.true(worst <= 0, `${dtype} r=${r} page ${pageSize}: round trip exceeds its bound by ${worst}`);
      gpu.destroy(src, ids, cache, out);
    }
  });
}

test('kv quantize - e4m3 scale is amax/448 per token, 1 for a zero latent', async (t) => {
  const gpu = await testGpu();
  const l = latentKvLayout({ kvLoraRank: 40, ropeDim: 8, pageSize: 4, dtype: 'fp8_e4m3' });
  const rows = latentRows(5, 48, 40, 3);
  const ids = gpu.upload('ids', Uint32Array.from([1, 0])), src = gpu.upload('rows', rows);
  const cache = gpu.buffer('cache', 2 * l.pageBytes);
  await gpu.run([kvQuantize({ layout: l, src, rows: 5, pageIds: ids, cache })]);
  const words = await gpu.readU32(cache, 0, (2 * l.pageBytes) / 4);
  const scaleOf = (tok: number) => f32FromBits(words[((tok < 4 ? 1 : 0) * l.pageBytes + l.scalesOffset) / 4 + (tok % 4)]!);
  t.is(scaleOf(2), 1);
  for (const tok of [0, 1, 3, 4]) {
    let amax = 0;
    for (let i = 0; i < 40; i++) amax = Math.max(amax, Math.abs(rows[tok * 48 + i]!));
    t.is(scaleOf(tok), Math.fround(amax * Math.fround(1 / 448)));
    t.true(Math.abs(scaleOf(tok) / (amax / 448) - 1) < 2 ** -23);
  }
  gpu.destroy(ids, src, cache);
});

test('kv quantize - more rows than one grid dimension holds', async (t) => {
  const gpu = await testGpu();
  const l = latentKvLayout({ kvLoraRank: 4, ropeDim: 4, pageSize: 1024, dtype: 'bf16' });
  const count = 65535 + 70;
  const rows = Float32Array.from(randomArray(count * 8, 5, 3));
  const pageIds = Uint32Array.from({ length: pagesFor(l, count) }, (_, i) => pagesFor(l, count) - 1 - i);
  const src = gpu.upload('rows', rows), ids = gpu.upload('ids', pageIds);
  const cache = gpu.buffer('cache', pageIds.length * l.pageBytes);
  await gpu.run([kvQuantize({ layout: l, src, rows: count, pageIds: ids, cache })]);
  const got = await gpu.readU32(cache, 0, (pageIds.length * l.pageBytes) / 4);
  const want = new Uint32Array(got.length);
  quantizeLatentRowsCpu(l, rows, count, 8, pageIds, 0, want);
  t.deepEqual(got, want);
  gpu.destroy(src, ids, cache);
});
