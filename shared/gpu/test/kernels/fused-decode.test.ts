// The decode step's fused kernels against the unfused dispatches they replace, on odd sizes: the same inputs
// through both paths, the outputs compared bit for bit where the fused kernel reproduces the unfused arithmetic
// in the same order, or within float32 rounding where it sums in another order.
import test from 'ava';
import { kvAppend } from '../../src/kernels/kv-quantize/index.js';
import { rmsNorm } from '../../src/kernels/rms-norm/rms-norm.js';
import { rope } from '../../src/kernels/rope/rope.js';
import { KV_DTYPES, latentKvLayout } from '@latentwire/protocol';
import { roundTo, testGpu, uploadF32, uploadWeight } from '../../src/testing.js';
import { randomArray } from '@latentwire/testing';

for (const dtype of KV_DTYPES) {
  test(`fused - kv append with norm + rope equals rms-norm, rope, kv append (${dtype})`, async (t) => {
    const gpu = await testGpu();
    for (const [r, ropeDim, normDtype] of [[41, 6, 'bf16'], [512, 64, 'f32'], [200, 2, 'f16']] as const) {
      const width = r + ropeDim, stride = width + 5, rows = 3, pageSize = 5, pagesPerBuffer = 3, eps = 1e-6, factor = 1.25;
      const l = latentKvLayout({ kvLoraRank: r, ropeDim, pageSize, dtype });
      const x = roundTo(randomArray(rows * stride, 11 + r, 2), 'f32');
      const w = uploadWeight(gpu, 'norm', roundTo(randomArray(r, 12 + r, 1.5), normDtype), normDtype, [r]);
      const invFreq = uploadF32(gpu, 'inv_freq', Float32Array.from({ length: ropeDim / 2 }, (_, i) => 10000 ** (-(2 * i) / ropeDim)));
      const positions = gpu.upload('positions', Uint32Array.from([0, 13, 7]));
      const offsets = gpu.upload('offsets', Uint32Array.from([0, 4, 8]));
      const table = gpu.upload('table', Uint32Array.from([5, 0, 0, 0, 1, 2, 4, 0, 3, 0, 0, 0]));
      const pools = () => [0, 1].map((k) => gpu.upload(`pool${k}`, new Uint32Array((pagesPerBuffer * l.pageBytes) / 4).fill(0xdeadbeef)));
      const srcA = uploadF32(gpu, 'a', x), srcB = uploadF32(gpu, 'b', x);
      const poolsA = pools(), poolsB = pools();
      const common = { layout: l, rows, srcStride: stride, srcOffset: 0, positions, tableOffsets: offsets, pageTable: table, pagesPerBuffer };
      await gpu.run([
        rmsNorm({ x: srcA, weight: w, y: srcA, rows, cols: r, eps, inStride: stride, outStride: stride }),
        rope({ x: srcA, positions, invFreq, rows, heads: 1, ropeDim, rowStride: stride, headStride: 0, offset: r, attentionFactor: factor }),
        kvAppend({ ...common, src: srcA, pools: poolsA }),
        kvAppend({ ...common, src: srcB, pools: poolsB, finish: { normWeight: w, eps, invFreq, attentionFactor: factor } }),
      ]);
      t.deepEqual(await gpu.readU32(srcB, 0, rows * stride), await gpu.readU32(srcA, 0, rows * stride), `rows r=${r}`);
      for (let k = 0; k < 2; k++) {
        const n = (pagesPerBuffer * l.pageBytes) / 4;
        t.deepEqual(await gpu.readU32(poolsB[k]!, 0, n), await gpu.readU32(poolsA[k]!, 0, n), `pool ${k} r=${r}`);
      }
      gpu.destroy(w.buffer, invFreq, positions, offsets, table, srcA, srcB, ...poolsA, ...poolsB);
    }
  });
}
