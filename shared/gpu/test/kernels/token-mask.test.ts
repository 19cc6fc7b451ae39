// token-mask (constrained decoding) against a CPU reference: masked rows get -inf exactly where their bits are
// clear and keep every allowed logit bit for bit; rows without a mask are untouched; the sampler after it only
// ever picks allowed tokens, greedy or sampled.
import test from 'ava';
import { maskWords, NO_MASK, packSamplingParams, sampleTokens, tokenMask } from '../../src/kernels/sample/index.js';
import { testGpu } from '../../src/testing.js';
import { randomArray, rng } from '@latentwire/testing';

const VOCAB = 1000; // not a multiple of 32 or of the workgroup

/** The CPU reference: -inf where the mask's bit is clear. */
function applyMask(row: Float32Array, mask: Uint32Array): Float32Array {
  return row.map((x, i) => (((mask[i >>> 5]! >>> (i & 31)) & 1) === 1 ? x : -Infinity));
}

test('token-mask: -inf exactly at disallowed tokens of masked rows; other rows untouched; the sampler picks allowed tokens', async (t) => {
  const gpu = await testGpu();
  const R = 6, W = maskWords(VOCAB);
  const r = rng(9);
  const logits = Float32Array.from(randomArray(R * VOCAB, 21, 6));
  // mask rows in another order than the batch rows; rows 1 and 4 unconstrained; mask 2 allows one token only
  const maskRowOf = [2, NO_MASK, 0, 3, NO_MASK, 1];
  const masks = new Uint32Array(4 * W);
  for (let m = 0; m < 4; m++) {
    const density = [0.5, 0.02, 0, 0.9][m]!;
    for (let i = 0; i < VOCAB; i++) if (r() < density) masks[m * W + (i >>> 5)]! |= 1 << (i & 31);
  }
  masks[2 * W + (777 >>> 5)]! |= 1 << (777 & 31);
  const lb = gpu.upload('logits', logits), mr = gpu.upload('mask_rows', Uint32Array.from(maskRowOf)), mb = gpu.upload('masks', masks);
  const params = packSamplingParams(Array.from({ length: R }, (_, i) => ({ temperature: i % 2 === 0 ? 0 : 1, topK: 0, topP: 1, seed: 5, counter: i })));
  const pb = gpu.upload('params', params), out = gpu.buffer('tokens', R * 4);
  await gpu.run([tokenMask({ logits: lb, maskRows: mr, masks: mb, rows: R, vocab: VOCAB }), sampleTokens({ logits: lb, params: pb, out, rows: R, vocab: VOCAB })]);
  const got = await gpu.readF32(lb, 0, R * VOCAB);
  const tokens = await gpu.readU32(out, 0, R);
  for (let b = 0; b < R; b++) {
    const row = logits.subarray(b * VOCAB, (b + 1) * VOCAB);
    const m = maskRowOf[b]!;
    const want = m === NO_MASK ? row : applyMask(row, masks.subarray(m * W, (m + 1) * W));
    t.deepEqual([...got.subarray(b * VOCAB, (b + 1) * VOCAB)], [...want], `row ${b}`);
    const tok = tokens[b]!;
    t.true(want[tok]! > -Infinity, `row ${b} sampled an allowed token`);
    if (b % 2 === 0) t.is(want[tok], Math.max(...want), `row ${b}: greedy picks the best allowed token`);
  }
  t.is(tokens[0], 777, 'a single allowed token (batch row 0, mask 2) is always taken');
  gpu.destroy(lb, mr, mb, pb, out);
});
