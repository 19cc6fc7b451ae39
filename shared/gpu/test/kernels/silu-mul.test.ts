import test from 'ava';
import { siluMul } from '../../src/kernels/silu-mul/silu-mul.js';
import { silu } from '../reference/index.js';
import { roundTo, testGpu, uploadF32 } from '../../src/testing.js';
import { maxAbsDiff, randomArray } from '@latentwire/testing';

test.serial('silu-mul - fused gate_up rows [M, 2I] (gate columns then up columns)', async (t) => {
  const gpu = await testGpu();
  const M = 5, I = 301;
  const gu = roundTo(randomArray(M * 2 * I, 11, 6), 'f32');
  const gb = uploadF32(gpu, 'gate_up', gu);
  const yb = gpu.buffer('y', M * I * 4);
  await gpu.run([siluMul({ gate: gb, y: yb, rows: M, cols: I })]);
  const want = new Float64Array(M * I);
  for (let m = 0; m < M; m++) for (let i = 0; i < I; i++) want[m * I + i] = silu(gu[m * 2 * I + i]!) * gu[m * 2 * I + I + i]!;
  t.true(maxAbsDiff(await gpu.readF32(yb, 0, M * I), want) < 1e-5);
  gpu.destroy(gb, yb);
});

test.serial('silu-mul - separate buffers with their own strides and offsets, into a strided output', async (t) => {
  const gpu = await testGpu();
  const M = 7, I = 37;
  const gStride = 50, gOff = 3, uStride = 41, uOff = 4, yStride = 45, yOff = 6;
  const g = roundTo(randomArray(M * gStride, 21, 8), 'f32');
  const u = roundTo(randomArray(M * uStride, 22, 2), 'f32');
  const y0 = randomArray(M * yStride, 23, 1);
  const gb = uploadF32(gpu, 'g', g);
  const ub = uploadF32(gpu, 'u', u);
  const yb = uploadF32(gpu, 'y', y0);
  await gpu.run([siluMul({ gate: gb, up: ub, y: yb, rows: M, cols: I, gateStride: gStride, gateOffset: gOff, upStride: uStride, upOffset: uOff, outStride: yStride, outOffset: yOff })]);
  const want = Float64Array.from(new Float32Array(y0)); // untouched columns keep their values
  for (let m = 0; m < M; m++) {
    for (let i = 0; i < I; i++) want[m * yStride + yOff + i] = silu(g[m * gStride + gOff + i]!) * u[m * uStride + uOff + i]!;
  }
  t.true(maxAbsDiff(await gpu.readF32(yb, 0, M * yStride), want) < 1e-5);
  gpu.destroy(gb, ub, yb);
});

test.serial('silu-mul - extreme gate values stay finite (silu(-100) = -0, silu(100) = 100)', async (t) => {
  const gpu = await testGpu();
  const g = Float32Array.from([-100, -30, 0, 30, 100, -88.5, 88.5, 1]);
  const u = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const gb = uploadF32(gpu, 'g', g);
  const ub = uploadF32(gpu, 'u', u);
  const yb = gpu.buffer('y', 8 * 4);
  await gpu.run([siluMul({ gate: gb, up: ub, y: yb, rows: 2, cols: 4 })]);
  const y = await gpu.readF32(yb, 0, 8);
  t.true(y.every(Number.isFinite));
  t.true(maxAbsDiff(y, [...g].map((v, i) => silu(v) * u[i]!)) < 1e-4);
  gpu.destroy(gb, ub, yb);
});

test('silu-mul - refuses an output aliasing an input', (t) => {
  const b = { size: 64 } as GPUBuffer;
  t.throws(() => siluMul({ gate: b, y: b, rows: 1, cols: 4 }), { message: /must not be an input/ });
});
