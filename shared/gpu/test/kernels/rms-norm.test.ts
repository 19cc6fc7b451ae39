import test from 'ava';
import { rmsNorm } from '../../src/kernels/rms-norm/rms-norm.js';
import { roundTo, testGpu, uploadF32, uploadWeight } from '../../src/testing.js';
import { maxAbsDiff, randomArray } from '@latentwire/testing';

/** float64 reference, written independently of the kernel. */
function rmsNormRef(x: Float64Array, w: Float64Array, rows: number, cols: number, eps: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c]! ** 2;
    const inv = 1 / Math.sqrt(ss / cols + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c]! * inv * w[c]!;
  }
  return y;
}

for (const dtype of ['bf16', 'f16', 'f32'] as const) {
  test(`rms-norm - matches float64 on odd sizes (${dtype})`, async (t) => {
    const gpu = await testGpu();
    // 333: each thread's loop is its one-load tail only; 1000: the 4-loads-a-trip body, then the tail
    for (const cols of [333, 1000]) {
      const rows = 7, eps = 1e-6;
      const x = roundTo(randomArray(rows * cols, 1, 3), 'f32');
      const w = roundTo(randomArray(cols, 2, 1.5), dtype);
      const xb = uploadF32(gpu, 'x', x);
      const wb = uploadWeight(gpu, 'w', w, dtype, [cols]);
      const yb = gpu.buffer('y', rows * cols * 4);
      await gpu.run([rmsNorm({ x: xb, weight: wb, y: yb, rows, cols, eps })]);
      const y = await gpu.readF32(yb, 0, rows * cols);
      t.true(maxAbsDiff(y, rmsNormRef(x, w, rows, cols, eps)) < 1e-5, `cols ${cols}`);
      gpu.destroy(xb, wb.buffer, yb);
    }
  });
}

test('rms-norm - strided rows normalize a slice in place of a copy', async (t) => {
  const gpu = await testGpu();
  const rows = 5, width = 50, cols = 37, eps = 1e-6;
  const x = roundTo(randomArray(rows * width, 3, 2), 'f32');
  const w = roundTo(randomArray(cols, 4), 'bf16');
  const xb = uploadF32(gpu, 'x', x);
  const wb = uploadWeight(gpu, 'w', w, 'bf16', [cols]);
  const yb = gpu.buffer('y', rows * cols * 4);
  await gpu.run([rmsNorm({ x: xb, weight: wb, y: yb, rows, cols, eps, inStride: width, inOffset: 0 })]);
  const dense = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dense[r * cols + c] = x[r * width + c]!;
  t.true(maxAbsDiff(await gpu.readF32(yb, 0, rows * cols), rmsNormRef(dense, w, rows, cols, eps)) < 1e-5);
  gpu.destroy(xb, wb.buffer, yb);
});

test('rms-norm - in place on a strided slice leaves the rest of each row alone', async (t) => {
  const gpu = await testGpu();
  const rows = 4, width = 45, cols = 29, eps = 1e-6;
  const x = roundTo(randomArray(rows * width, 8, 2), 'f32');
  const w = roundTo(randomArray(cols, 9), 'bf16');
  const xb = uploadF32(gpu, 'x', x);
  const wb = uploadWeight(gpu, 'w', w, 'bf16', [cols]);
  await gpu.run([rmsNorm({ x: xb, weight: wb, y: xb, rows, cols, eps, inStride: width, outStride: width })]);
  const got = await gpu.readF32(xb, 0, rows * width);
  const dense = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dense[r * cols + c] = x[r * width + c]!;
  const want = rmsNormRef(dense, w, rows, cols, eps);
  let err = 0;
  for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) {
    err = Math.max(err, Math.abs(got[r * width + c]! - (c < cols ? want[r * cols + c]! : x[r * width + c]!)));
  }
  t.true(err < 1e-5);
  gpu.destroy(xb, wb.buffer);
});
