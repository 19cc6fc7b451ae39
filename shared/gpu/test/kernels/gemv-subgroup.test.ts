// The GEMV's lanes summed by subgroup shuffles (MatmulLimits.subgroupSize) against the same GEMV summing them
// through workgroup memory: the shuffles add the tree's pairs in its order, so the outputs are equal bit for bit.
// Run with 8 lanes a row group, which a subgroup of 8 (lavapipe's) or 32 (NVIDIA's) holds whole; the product
// GEMVs take 32 lanes, and those run the subgroup path on 32-wide devices only (GPU machine: the fused-decode and
// moe tests).
import test from 'ava';
import { matmul } from '../../src/kernels/matmul/matmul.js';
import { roundTo, testGpu, uploadF32, uploadWeight } from '../../src/testing.js';
import { randomArray } from '@latentwire/testing';

// an adapter without one subgroup size (a multiple of 8) cannot run the shuffles variant: skipped, and said so
const gpu = await testGpu();
const size = gpu.uniformSubgroupSize;
const supported = size !== undefined && size % 8 === 0;
const subgroupTest = supported ? test : test.skip;
const skipNote = supported ? '' : ` (skipped: no single subgroup size of a multiple of 8, got ${size})`;

subgroupTest(`gemv - lanes summed by subgroup shuffles equal the workgroup-memory tree bit for bit${skipNote}`, async (t) => {
  const tree = { ...gpu.matmulLimits, subgroupSize: undefined }, shuffles = { ...gpu.matmulLimits, subgroupSize: size };
  for (const [M, N, K, accumulate] of [[1, 37, 200, false], [3, 21, 96, true]] as const) {
    const x = uploadF32(gpu, 'x', roundTo(randomArray(M * K, 7 + M, 2), 'f32'));
    const w = uploadWeight(gpu, 'w', roundTo(randomArray(N * K, 8 + M), 'bf16'), 'bf16', [N, K]);
    const start = roundTo(randomArray(M * N, 9 + M), 'f32');
    const ya = uploadF32(gpu, 'ya', start), yb = uploadF32(gpu, 'yb', start);
    const args = { x, weight: w, M, N, K, accumulate, variant: 'gemv', gemv: { T: 8 } } as const;
    const a = matmul({ ...args, y: ya }, tree), b = matmul({ ...args, y: yb }, shuffles);
    t.notRegex(a.shader.label, /_sg$/);
    t.regex(b.shader.label, /_sg$/, 'the shuffles variant');
    await gpu.run([a, b]);
    t.deepEqual(await gpu.readU32(yb, 0, M * N), await gpu.readU32(ya, 0, M * N), `M ${M}, N ${N}, K ${K}`);
    gpu.destroy(x, w.buffer, ya, yb);
  }
});
