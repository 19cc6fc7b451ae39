import test from 'ava';
import { embedding } from '../../src/kernels/embedding/embedding.js';
import { rope } from '../../src/kernels/rope/rope.js';
import { argmax } from '../../src/kernels/argmax/argmax.js';
import { ropeAttentionFactor, ropeInverseFrequencies, attentionSoftmaxScale } from '@latentwire/model';
import type { MlaConfig } from '@latentwire/model';
import * as ref from '../reference/index.js';
import { roundTo, testGpu, uploadF32, uploadWeight } from '../../src/testing.js';
import { maxAbsDiff, randomArray } from '@latentwire/testing';

test('embedding - gathers rows of a bf16 table as f32', async (t) => {
  const gpu = await testGpu();
  const vocab = 53, hidden = 71, ids = [5, 0, 52, 5, 17];
  const table = roundTo(randomArray(vocab * hidden, 11), 'bf16');
  const tb = uploadWeight(gpu, 'table', table, 'bf16', [vocab, hidden]);
  const idb = gpu.upload('ids', Uint32Array.from(ids));
  const y = gpu.buffer('y', ids.length * hidden * 4);
  await gpu.run([embedding({ ids: idb, table: tb, y, tokens: ids.length })]);
  t.is(maxAbsDiff(await gpu.readF32(y, 0, ids.length * hidden), ref.embedding(table, hidden, ids)), 0);
  gpu.destroy(tb.buffer, idb, y);
});

const yarnCfg = {
  qkNopeHeadDim: 24, qkRopeHeadDim: 16, ropeTheta: 10000,
  ropeScaling: { kind: 'yarn', factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1, mscale: 0.707, mscaleAllDim: 0.707 },
} as unknown as MlaConfig;
const yarnCfg2 = { ...yarnCfg, ropeScaling: { ...yarnCfg.ropeScaling, mscale: 1, mscaleAllDim: 0.5 } } as unknown as MlaConfig;
const plainCfg = { ...yarnCfg, ropeScaling: { kind: 'default' } } as unknown as MlaConfig;

test('rope - frequencies and scales equal the reference (plain and YaRN)', (t) => {
  for (const cfg of [plainCfg, yarnCfg, yarnCfg2]) {
    t.true(maxAbsDiff(ropeInverseFrequencies(cfg), ref.ropeInvFreq(cfg)) < 1e-7);
    t.true(Math.abs(ropeAttentionFactor(cfg) - ref.ropeAttentionFactor(cfg)) < 1e-12);
    t.true(Math.abs(attentionSoftmaxScale(cfg) - ref.softmaxScale(cfg)) < 1e-12);
  }
  t.not(ropeAttentionFactor(yarnCfg2), 1);
});

for (const [name, cfg] of [['plain', plainCfg], ['yarn', yarnCfg2]] as const) {
  test(`rope - rotates interleaved pairs of each head slice (${name})`, async (t) => {
    const gpu = await testGpu();
    const rows = 9, heads = 3, nope = 24, dim = 16, width = heads * (nope + dim);
    const positions = [0, 1, 2, 7, 100, 1000, 4095, 9000, 30000];
    const x = roundTo(randomArray(rows * width, 21), 'f32');
    const invFreq = ropeInverseFrequencies(cfg);
    const xb = uploadF32(gpu, 'x', x);
    const pb = gpu.upload('pos', Uint32Array.from(positions));
    const fb = gpu.upload('inv_freq', invFreq);
    const factor = ropeAttentionFactor(cfg);
    await gpu.run([rope({ x: xb, positions: pb, invFreq: fb, rows, heads, ropeDim: dim, rowStride: width, headStride: nope + dim, offset: nope, attentionFactor: factor })]);
    const got = await gpu.readF32(xb, 0, rows * width);
    // reference on the rope slices only
    const slices = new Float64Array(rows * heads * dim);
    for (let r = 0; r < rows; r++) for (let h = 0; h < heads; h++) for (let d = 0; d < dim; d++) slices[(r * heads + h) * dim + d] = x[r * width + h * (nope + dim) + nope + d]!;
    const want = ref.applyRope(slices, positions, dim, Float64Array.from(invFreq), factor);
    let err = 0;
    for (let r = 0; r < rows; r++) for (let h = 0; h < heads; h++) for (let d = 0; d < nope + dim; d++) {
      const i = r * width + h * (nope + dim) + d;
      const w = d < nope ? x[i]! : want[(r * heads + h) * dim + d - nope]!;
      err = Math.max(err, Math.abs(got[i]! - w));
    }
    // f32 angles at position 30000 carry ~2e-3 rad of rounding in transformers too; the bound covers that
    t.true(err < 5e-3, `max error ${err}`);
    gpu.destroy(xb, pb, fb);
  });
}

test('argmax - per row, lowest index on ties', async (t) => {
  const gpu = await testGpu();
  const rows = 4, cols = 301;
  const x = Float32Array.from(randomArray(rows * cols, 5));
  x[1 * cols + 7] = 9; x[1 * cols + 200] = 9; // tie: 7 wins
  x[3 * cols + 300] = 5;
  const xb = gpu.upload('x', x);
  const out = gpu.buffer('out', rows * 4);
  await gpu.run([argmax({ logits: xb, out, rows, cols })]);
  const want = [0, 1, 2, 3].map((r) => {
    let b = 0;
    for (let c = 1; c < cols; c++) if (x[r * cols + c]! > x[r * cols + b]!) b = c;
    return b;
  });
  t.deepEqual([...(await gpu.readU32(out, 0, rows))], want);
  gpu.destroy(xb, out);
});

test('fill-random - values lie in [bias - scale, bias + scale) and vary, for each dtype', async (t) => {
  const { fillRandom } = await import('../../src/kernels/fill-random/fill-random.js');
  const gpu = await testGpu();
  for (const dtype of ['bf16', 'f16', 'f32'] as const) {
    const n = 1001;
    const buffer = gpu.buffer('w', dtype === 'f32' ? n * 4 : Math.ceil(n / 2) * 4);
    await gpu.run([fillRandom({ buffer, dtype, shape: [n] }, 5, 0.5, 1)]);
    const words = await gpu.readU32(buffer);
    const values: number[] = [];
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      if (dtype === 'f32') { u[0] = words[i]!; values.push(f[0]!); continue; }
      const half = (words[i >> 1]! >>> (16 * (i & 1))) & 0xffff;
      if (dtype === 'bf16') { u[0] = half << 16; values.push(f[0]!); }
      else values.push(roundTo(Float64Array.of(0), 'f16')[0]! + (() => { const e = (half >> 10) & 0x1f, m = half & 0x3ff; return (half & 0x8000 ? -1 : 1) * (1 + m / 1024) * 2 ** (e - 15); })());
    }
    t.true(values.every((v) => v >= 0.49 && v <= 1.51), dtype);
    t.true(new Set(values).size > 50, `${dtype} values vary`);
    gpu.destroy(buffer);
  }
});
