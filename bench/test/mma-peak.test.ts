// The tensor-core peak bench's shaders compile: type-checked with stand-ins for the matrix types on adapters
// without subgroup matrices (lavapipe in CI), as shared/gpu's mma-wgsl test does for the kernels.
import test from 'ava';
import { standInMatrices, testGpu, wgslErrors } from '@latentwire/gpu/testing';
import { loadsProgram, peakProgram, stagingProgram } from '../mma-peak.js';

test('mma-peak - every accumulator count and workgroup size compiles', async (t) => {
  const gpu = await testGpu();
  const sink = gpu.buffer('sink', 16);
  for (const wg of [128, 256]) {
    for (const acc of [1, 2, 4, 8]) {
      const { shader } = peakProgram(sink, acc, wg, 1);
      t.regex(shader.source, /subgroupMatrixMultiplyAccumulate/);
      t.is(await wgslErrors(gpu, standInMatrices(shader.source)), '', shader.label);
    }
  }
  gpu.destroy(sink);
});

test('mma-peak - the load and staging probes compile, with and without their barriers and products, f32 and f16 x', async (t) => {
  const gpu = await testGpu();
  const sink = gpu.buffer('sink', 16);
  const shaders = [
    ...[[1, 1], [2, 2], [2, 4], [4, 4]].flatMap(([TM, TN]) => [false, true].map((barrier) => loadsProgram(sink, TM!, TN!, barrier, 1).shader)),
    ...[false, true].flatMap((products) => [false, true].map((xF16) => stagingProgram(sink, sink, sink, products, 1, xF16).shader)),
  ];
  for (const shader of shaders) t.is(await wgslErrors(gpu, standInMatrices(shader.source)), '', shader.label);
  gpu.destroy(sink);
});
