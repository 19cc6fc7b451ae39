// The absorbed-MLA per-head kernels against float64: headMatmul on odd sizes with strided x / y and a weight
// addressed inside a larger buffer (as W_UK is read inside kv_b_proj), its rope and split-merge forms against the
// dispatches they replace, and headTranspose building W_UVᵀ.
import test from 'ava';
import { maxAbsDiff, randomArray } from '@latentwire/testing';
import { roundTo, testGpu, uploadWeight } from '@latentwire/gpu/testing';
import { headMatmul } from '../../src/kernels/head-matmul/index.js';
import { groupedDecodeMerge, MAX_DECODE_SPLITS } from '../../src/kernels/grouped-decode-attention/index.js';
import { headTranspose, headTransposeBytes } from '../../src/kernels/head-transpose/index.js';
import { kvAppend, rope } from '@latentwire/gpu/kernels';
import { KV_DTYPES, latentKvLayout } from '@latentwire/protocol';

for (const dtype of ['bf16', 'f32'] as const) {
  // batch 1 runs the one-row shape of 8 columns, batches of 2-4 rows the one of 16 (K past 512: two rounds of x),
  // more the 4-row block shape; each with its K split's partials added in workgroup memory, and where the device
  // has one subgroup size, summed by subgroup shuffles first (the shapes whose column runs a subgroup divides)
  test(`head matmul - ${dtype}: odd sizes, strided rows, weight at an offset, batch beyond one block`, async (t) => {
    const gpu = await testGpu();
    const sizes = [undefined, ...(gpu.uniformSubgroupSize === undefined ? [] : [gpu.uniformSubgroupSize])];
    for (const subgroupSize of sizes) for (const [B, heads, K, N] of [[1, 3, 37, 45], [2, 2, 600, 21], [9, 2, 130, 8], [5, 5, 64, 513]] as const) {
      const xStride = heads * (K + 3), xHead = K + 3, yStride = heads * N + 7;
      const wRow = N + 2, wHead = K * wRow + 5, wOff = 6;
      const x = randomArray(B * xStride, 1 + B);
      const w = roundTo(randomArray(wOff + heads * wHead, 2 + K), dtype);
      const xb = gpu.upload('x', Float32Array.from(x));
      const wb = uploadWeight(gpu, 'w', w, dtype, [w.length]);
      const yb = gpu.buffer('y', B * yStride * 4);
      await gpu.run([headMatmul({
        x: xb, weight: wb, y: yb, batch: B, heads, K, N, xRowStride: xStride, xHeadStride: xHead, yRowStride: yStride, yHeadStride: N,
        wOffset: wOff, wHeadStride: wHead, wRowStride: wRow, subgroupSize,
      })]);
      const got = await gpu.readF32(yb, 0, B * yStride);
      const want = new Float64Array(B * yStride);
      const gotUsed = new Float64Array(B * yStride);
      for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += Math.fround(x[b * xStride + h * xHead + k]!) * w[wOff + h * wHead + k * wRow + n]!;
        want[b * yStride + h * N + n] = s;
        gotUsed[b * yStride + h * N + n] = got[b * yStride + h * N + n]!;
      }
      const err = maxAbsDiff(gotUsed, want);
      t.true(err < 1e-4, `[${B}, ${heads}, ${K}, ${N}]${subgroupSize ? ` (subgroups of ${subgroupSize})` : ''} off by ${err}`);
      gpu.destroy(xb, wb.buffer, yb);
    }
  });

  test(`head transpose - ${dtype}: per head, rows [offset, offset + rows) of each block become columns`, async (t) => {
    const gpu = await testGpu();
    const heads = 3, stride = 10, offset = 4, rows = 6, cols = 7;
    const w = roundTo(randomArray(heads * stride * cols, 9), dtype);
    const src = uploadWeight(gpu, 'src', w, dtype, [heads * stride, cols]);
    const dst = gpu.buffer('dst', headTransposeBytes(dtype, heads, rows, cols));
    await gpu.run([headTranspose({ src, dst, heads, rows, cols, headRowStride: stride, rowOffset: offset })]);
    const words = await gpu.readU32(dst, 0, headTransposeBytes(dtype, heads, rows, cols) / 4);
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    const value = (e: number) => {
      if (dtype === 'f32') { u[0] = words[e]!; return f[0]!; }
      u[0] = ((words[e >> 1]! >>> (16 * (e & 1))) & 0xffff) << 16;
      return f[0]!;
    };
    const got: number[] = [], want: number[] = [];
    for (let h = 0; h < heads; h++) for (let j = 0; j < cols; j++) for (let i = 0; i < rows; i++) {
      got.push(value((h * cols + j) * rows + i));
      want.push(w[(h * stride + offset + i) * cols + j]!);
    }
    t.deepEqual(got, want); // values are moved, never rounded: exactly equal
    gpu.destroy(src.buffer, dst);
  });
}

test('head matmul - with rope: the product and the roped slice equal head matmul then rope into the same rows', async (t) => {
  const gpu = await testGpu();
  for (const [B, heads, nope, ropeDim, N] of [[1, 3, 37, 6, 45], [6, 2, 16, 64, 130]] as const) {
    const qk = nope + ropeDim, out = N + ropeDim;
    const x = gpu.upload('x', Float32Array.from(randomArray(B * heads * qk, 61 + B)));
    const w = uploadWeight(gpu, 'w', roundTo(randomArray(heads * nope * N, 62), 'bf16'), 'bf16', [heads * nope, N]);
    const positions = gpu.upload('positions', Uint32Array.from({ length: B }, (_, b) => 3 + 17 * b));
    const invFreq = gpu.upload('inv_freq', Float32Array.from({ length: ropeDim / 2 }, (_, i) => 10000 ** (-(2 * i) / ropeDim)));
    const ya = gpu.buffer('ya', B * heads * out * 4), yb = gpu.buffer('yb', B * heads * out * 4);
    const common = { x, weight: w, batch: B, heads, K: nope, N, xRowStride: heads * qk, xHeadStride: qk, yRowStride: heads * out, yHeadStride: out };
    await gpu.run([
      headMatmul({ ...common, y: ya }),
      rope({
        x, positions, invFreq, rows: B, heads, ropeDim, rowStride: heads * qk, headStride: qk, offset: nope, attentionFactor: 0.75,
        out: ya, outRowStride: heads * out, outHeadStride: out, outOffset: N,
      }),
      headMatmul({ ...common, y: yb, rope: { positions, invFreq, ropeDim, inOffset: nope, outOffset: N, attentionFactor: 0.75 } }),
    ]);
    t.deepEqual(await gpu.readU32(yb, 0, B * heads * out), await gpu.readU32(ya, 0, B * heads * out), `[${B}, ${heads}, ${nope}+${ropeDim}, ${N}]`);
    gpu.destroy(x, w.buffer, positions, invFreq, ya, yb);
  }
});

// the decode step's absorbed query with the KV append in its dispatch (batches up to 4) against the two dispatches:
// the product, the roped q_pe, the finished latent rows and every cache word, bit for bit, per cache dtype, with a
// rank that leaves partial norm lanes and a rope slice across a 64-value boundary
for (const dtype of KV_DTYPES) {
  test(`head matmul - with rope and the KV append (${dtype}): as head matmul with rope then kvAppend`, async (t) => {
    const gpu = await testGpu();
    for (const [B, heads, nope, ropeDim, N, r] of [[1, 3, 37, 6, 45, 41], [4, 2, 16, 64, 130, 512]] as const) {
      const qk = nope + ropeDim, out = N + ropeDim, width = r + ropeDim, stride = width + 3, pageSize = 5, pagesPerBuffer = 3;
      const x = gpu.upload('x', Float32Array.from(randomArray(B * heads * qk, 81 + B)));
      const w = uploadWeight(gpu, 'w', roundTo(randomArray(heads * nope * N, 82), 'bf16'), 'bf16', [heads * nope, N]);
      const positions = gpu.upload('positions', Uint32Array.from([0, 13, 7, 3].slice(0, B)));
      const invFreq = gpu.upload('inv_freq', Float32Array.from({ length: ropeDim / 2 }, (_, i) => 10000 ** (-(2 * i) / ropeDim)));
      const norm = uploadWeight(gpu, 'norm', roundTo(randomArray(r, 83, 1.5), 'bf16'), 'bf16', [r]);
      const latent = roundTo(randomArray(B * stride, 84 + r, 2), 'f32');
      const [srcA, srcB] = ['a', 'b'].map((k) => gpu.upload(`src_${k}`, Float32Array.from(latent)));
      const offsets = gpu.upload('offsets', Uint32Array.from([0, 4, 8, 10]));
      const table = gpu.upload('table', Uint32Array.from([5, 0, 0, 0, 1, 2, 4, 0, 3, 0, 0, 0]));
      const l = latentKvLayout({ kvLoraRank: r, ropeDim, pageSize, dtype });
      const pools = () => [0, 1].map((k) => gpu.upload(`pool${k}`, new Uint32Array((pagesPerBuffer * l.pageBytes) / 4).fill(0xdeadbeef)));
      const poolsA = pools(), poolsB = pools();
      const ya = gpu.buffer('ya', B * heads * out * 4), yb = gpu.buffer('yb', B * heads * out * 4);
      const common = {
        x, weight: w, batch: B, heads, K: nope, N, xRowStride: heads * qk, xHeadStride: qk, yRowStride: heads * out, yHeadStride: out,
        rope: { positions, invFreq, ropeDim, inOffset: nope, outOffset: N, attentionFactor: 0.75 },
      };
      const append = {
        layout: l, rows: B, srcStride: stride, positions, tableOffsets: offsets, pageTable: table, pagesPerBuffer,
        finish: { normWeight: norm, eps: 1e-6, invFreq, attentionFactor: 0.75 },
      };
      const fused = headMatmul({ ...common, y: yb, append: { ...append, src: srcB, pools: poolsB } });
      const apart = headMatmul({ ...common, y: ya });
      t.is(fused.workgroups[0], apart.workgroups[0] + 1, 'one more column of workgroups than the rope form');
      await gpu.run([
        apart,
        kvAppend({ ...append, src: srcA, pools: poolsA }),
        fused,
      ]);
      const shape = `[${B}, ${heads}, ${nope}+${ropeDim}, ${N}], r ${r}`;
      t.deepEqual(await gpu.readU32(yb, 0, B * heads * out), await gpu.readU32(ya, 0, B * heads * out), `q ${shape}`);
      t.deepEqual(await gpu.readU32(srcB, 0, B * stride), await gpu.readU32(srcA, 0, B * stride), `latent rows ${shape}`);
      for (let k = 0; k < 2; k++) {
        const n = (pagesPerBuffer * l.pageBytes) / 4;
        t.deepEqual(await gpu.readU32(poolsB[k]!, 0, n), await gpu.readU32(poolsA[k]!, 0, n), `pool ${k} ${shape}`);
      }
      gpu.destroy(x, w.buffer, positions, invFreq, norm.buffer, srcA, srcB, offsets, table, ...poolsA, ...poolsB, ya, yb);
    }
  });
}

test('head matmul - the KV append needs the rope form, a batch of 4 or fewer and the rope\'s positions', (t) => {
  const fake = { size: 1 << 20 } as unknown as GPUBuffer;
  const weight = { buffer: fake, dtype: 'bf16' as const, shape: [2 * 16, 8] };
  const rope = { positions: fake, invFreq: fake, ropeDim: 2, inOffset: 16, outOffset: 8, attentionFactor: 1 };
  const l = latentKvLayout({ kvLoraRank: 64, ropeDim: 2, pageSize: 4, dtype: 'bf16' });
  const append = { layout: l, src: fake, rows: 1, positions: fake, tableOffsets: fake, pageTable: fake, pools: [fake], pagesPerBuffer: 1 };
  const common = { x: fake, weight, y: fake, heads: 2, K: 16, N: 8 };
  t.throws(() => headMatmul({ ...common, batch: 1, append }), { message: /rope form/ });
  t.throws(() => headMatmul({ ...common, batch: 5, rope, append: { ...append, rows: 5 } }), { message: /batches up to 4/ });
  t.throws(() => headMatmul({ ...common, batch: 1, rope, append: { ...append, positions: { size: 4 } as unknown as GPUBuffer } }), { message: /share/ });
  t.notThrows(() => headMatmul({ ...common, batch: 1, rope, append }));
});

test('head matmul - merging KV splits while staging equals the merge dispatch then head matmul, and float64', async (t) => {
  const gpu = await testGpu();
  // [batch, heads, splits, K, N]: one block of rows, a partial block, 8 splits at a time and the rest, 16 then 8, the
  // most splits the form takes
  for (const [B, heads, S, K, N] of [[1, 3, 5, 68, 45], [6, 2, 3, 40, 130], [3, 2, 13, 36, 20], [1, 2, 24, 20, 16], [2, 1, MAX_DECODE_SPLITS, 12, 8]] as const) {
    const partial = Float32Array.from(randomArray(B * heads * S * K, 71 + S));
    // LSEs in base 2 spread over a wide range; split 1 of every row empty (lse -1e30, zeros) as the split kernel
    // leaves a split past the sequence's end, and row 0 of head 0 empty in every split (a sequence of no tokens)
    const lse = Float32Array.from(randomArray(B * heads * S, 72 + S, 30));
    for (let row = 0; row < B * heads; row++) {
      for (let s = 0; s < S; s++) {
        if (s === 1 || row === 0) {
          lse[row * S + s] = -1e30;
          partial.fill(0, (row * S + s) * K, (row * S + s + 1) * K);
        }
      }
    }
    const wv = roundTo(randomArray(heads * K * N, 73), 'bf16');
    const w = uploadWeight(gpu, 'w', wv, 'bf16', [heads * K, N]);
    const pb = gpu.upload('partial', partial), lb = gpu.upload('lse', lse);
    const merged = gpu.buffer('merged', B * heads * K * 4);
    const ya = gpu.buffer('ya', B * heads * N * 4), yb = gpu.buffer('yb', B * heads * N * 4);
    await gpu.run([
      groupedDecodeMerge({ partial: pb, lse: lb, out: merged, batch: B, heads, numSplits: S, kvLoraRank: K }),
      headMatmul({ x: merged, weight: w, y: ya, batch: B, heads, K, N }),
      headMatmul({ x: pb, merge: { lse: lb, numSplits: S }, weight: w, y: yb, batch: B, heads, K, N }),
    ]);
    const shape = `[${B}, ${heads}, ${S} splits, ${K}, ${N}]`;
    const got = await gpu.readF32(yb, 0, B * heads * N);
    t.deepEqual(new Uint32Array(got.buffer), await gpu.readU32(ya, 0, B * heads * N), shape);
    const want = new Float64Array(B * heads * N);
    for (let row = 0; row < B * heads; row++) {
      const h = row % heads;
      const m = Math.max(...Array.from(lse.subarray(row * S, row * S + S)));
      const ws = Array.from(lse.subarray(row * S, row * S + S), (l) => 2 ** (l - m));
      const den = ws.reduce((a, b) => a + b, 0);
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let k = 0; k < K; k++) {
          let o = 0;
          for (let s = 0; s < S; s++) o += ws[s]! * partial[(row * S + s) * K + k]!;
          sum += (o / den) * wv[(h * K + k) * N + n]!;
        }
        want[row * N + n] = sum;
      }
    }
    const err = maxAbsDiff(Float64Array.from(got), want);
    t.true(err < 1e-4, `${shape} off by ${err} from float64`);
    t.true(got.subarray(0, N).every((v) => v === 0), `${shape}: a row of no tokens gives zeros`);
    gpu.destroy(w.buffer, pb, lb, merged, ya, yb);
  }
});

test('head matmul - the merge form refuses more splits than it weighs, strided partials and rope', (t) => {
  const fake = { size: 1 << 20 } as GPUBuffer;
  const w = { buffer: fake, dtype: 'bf16' as const, shape: [8, 8] };
  const common = { x: fake, weight: w, y: fake, batch: 1, heads: 1, K: 8, N: 8 };
  t.throws(() => headMatmul({ ...common, merge: { lse: fake, numSplits: MAX_DECODE_SPLITS + 1 } }), { message: /numSplits/ });
  t.throws(() => headMatmul({ ...common, xRowStride: 16, merge: { lse: fake, numSplits: 2 } }), { message: /dense/ });
  t.throws(() => headMatmul({
    ...common, merge: { lse: fake, numSplits: 2 }, rope: { positions: fake, invFreq: fake, ropeDim: 2, inOffset: 0, outOffset: 0, attentionFactor: 1 },
  }), { message: /exclude/ });
});

test('head matmul - the subgroup-matrix engine runs from 16 rows, 16-bit weights at even offset and strides, even N', (t) => {
  const fake = { size: 1 << 20 } as GPUBuffer;
  const w = (dtype: 'bf16' | 'f32') => ({ buffer: fake, dtype, shape: [4096, 64] });
  const label = (a: Partial<Parameters<typeof headMatmul>[0]>) => headMatmul({
    x: fake, y: fake, weight: w('bf16'), batch: 16, heads: 2, K: 64, N: 64, engine: 'subgroup-matrix', ...a,
  }).shader.label;
  t.regex(label({}), /^head_matmul_mma_bf16_m16$/);
  t.regex(label({ batch: 40 }), /^head_matmul_mma_bf16_m48$/);
  t.regex(label({ batch: 200 }), /^head_matmul_mma_bf16_m64$/);
  t.regex(label({ batch: 64, K: 512 }), /^head_matmul_mma_bf16_m16$/);
  t.regex(label({ batch: 15 }), /^head_matmul_bf16$/);
  t.regex(label({ engine: 'f32' }), /^head_matmul_bf16$/);
  t.regex(label({ engine: undefined }), /^head_matmul_bf16$/);
  t.regex(label({ weight: w('f32') }), /^head_matmul_f32$/);
  t.regex(label({ wOffset: 1 }), /^head_matmul_bf16$/);
  t.regex(label({ N: 63 }), /^head_matmul_bf16$/);
});
