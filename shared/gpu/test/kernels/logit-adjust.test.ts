// The kernels around the sampler against the float64 reference (test/reference/logit-adjust.ts): penalties and
// logit_bias (logit-adjust), the per-sequence counts (count-tokens), and logprobs (token-logprobs).
import test from 'ava';
import {
  countsRow, countTokens, logitAdjust, LOGPROBS_WORDS, NEUTRAL_LOGIT_PARAMS, NO_COUNTS, NO_LOGPROBS, packLogitBias, packLogitParams,
  tokenLogprobs, unpackLogprobs, type LogitParams,
} from '../../src/kernels/sample/index.js';
import { applyLogitAdjust, logSoftmax, topIds } from '../reference/index.js';
import { testGpu } from '../../src/testing.js';
import { randomArray, rng } from '@latentwire/testing';

const VOCAB = 1000; // not a multiple of the workgroup

interface Row {
  readonly logits: Float32Array;
  readonly prompt: number[];
  readonly output: number[];
  readonly presence: number;
  readonly frequency: number;
  readonly repetition: number;
  readonly bias: Map<number, number>;
}

function randomRows(n: number, seed: number): Row[] {
  const r = rng(seed);
  const ids = (k: number, hi: number) => Array.from({ length: k }, () => Math.floor(r() * hi));
  return Array.from({ length: n }, (_, i) => {
    const bias = new Map<number, number>();
    for (const id of ids(i === 0 ? 0 : 1 + Math.floor(r() * 40), VOCAB)) bias.set(id, i === 1 ? 100 : Math.round((r() * 200 - 100) * 1000) / 1000);
    return {
      logits: Float32Array.from(randomArray(VOCAB, seed * 100 + i, 8)),
      // repeats in prompt and output; few enough that most tokens are unseen
      prompt: ids(5 + Math.floor(r() * 60), 300),
      output: ids(Math.floor(r() * 80), 300),
      // row 0: neutral (must be left exactly as is)
      presence: i === 0 ? 0 : r() * 4 - 2,
      frequency: i === 0 ? 0 : r() * 4 - 2,
      repetition: i === 0 ? 1 : 0.05 + r() * 1.95,
      bias,
    };
  });
}

test('logit-adjust + count-tokens: penalties and logit_bias match the float64 rule; counts follow the sampled tokens', async (t) => {
  const gpu = await testGpu();
  const rows = randomRows(7, 3);
  // counts rows in another order than the batch rows, plus an unused one
  const countRowOf = [4, 0, 6, 2, 7, 1, 3];
  const counts = new Uint32Array(8 * VOCAB);
  rows.forEach((row, i) => counts.set(countsRow(VOCAB, row.prompt, row.output), countRowOf[i]! * VOCAB));
  const biasEntries: [number, number][] = [];
  const params: LogitParams[] = rows.map((row, i) => {
    const biasStart = biasEntries.length;
    biasEntries.push(...row.bias);
    return { presencePenalty: row.presence, frequencyPenalty: row.frequency, repetitionPenalty: row.repetition, countsRow: countRowOf[i]!, biasStart, biasLength: row.bias.size, topLogprobs: NO_LOGPROBS };
  });
  const logits = new Float32Array(rows.length * VOCAB);
  rows.forEach((row, i) => logits.set(row.logits, i * VOCAB));
  const lb = gpu.upload('logits', logits), pb = gpu.upload('params', packLogitParams(params));
  const cb = gpu.upload('counts', counts), bb = gpu.upload('bias', packLogitBias(biasEntries, VOCAB));
  const sampled = rows.map((_, i) => (i * 37) % 300);
  const tb = gpu.upload('tokens', Uint32Array.from(sampled));
  await gpu.run([logitAdjust({ logits: lb, params: pb, counts: cb, bias: bb, rows: rows.length, vocab: VOCAB }), countTokens({ tokens: tb, params: pb, counts: cb, rows: rows.length, vocab: VOCAB })]);
  const got = await gpu.readF32(lb, 0, rows.length * VOCAB);
  const gotCounts = await gpu.readU32(cb, 0, 8 * VOCAB);
  let worst = 0;
  rows.forEach((row, i) => {
    const want = applyLogitAdjust(row.logits, { presencePenalty: row.presence, frequencyPenalty: row.frequency, repetitionPenalty: row.repetition, logitBias: row.bias }, row.prompt, row.output);
    for (let v = 0; v < VOCAB; v++) worst = Math.max(worst, Math.abs(got[i * VOCAB + v]! - want[v]!) / Math.max(1, Math.abs(want[v]!)));
    if (i === 0) t.deepEqual([...got.subarray(0, VOCAB)], [...row.logits], 'a neutral row is untouched');
    t.deepEqual([...gotCounts.subarray(countRowOf[i]! * VOCAB, (countRowOf[i]! + 1) * VOCAB)], [...countsRow(VOCAB, row.prompt, [...row.output, sampled[i]!])], `counts row of batch row ${i}`);
  });
  t.deepEqual([...gotCounts.subarray(5 * VOCAB, 6 * VOCAB)].every((c) => c === 0) ? [] : ['dirty'], [], 'an unused counts row stays zero');
  // measured on lavapipe: 2.2e-7 relative to max(1, |x|) (f32 rounding of biases, penalties and their sums:
  // ~2 ulp); bound ~5x that
  t.log(`worst relative error ${worst.toExponential(2)}`);
  t.true(worst <= 1e-6, `relative error ${worst}`);
  // logit_bias +100 makes its token the argmax of row 1
  const row1 = got.subarray(VOCAB, 2 * VOCAB);
  t.true([...rows[1]!.bias.keys()].includes(row1.indexOf(Math.max(...row1))));
  gpu.destroy(lb, pb, cb, bb, tb);
});

test('token-logprobs: the sampled token and top alternatives equal float64 log-softmax; ties to the lower id', async (t) => {
  const gpu = await testGpu();
  const R = 6;
  const logits = new Float32Array(R * VOCAB);
  for (let i = 0; i < R; i++) logits.set(Float32Array.from(randomArray(VOCAB, 50 + i, i === 5 ? 30 : 6)), i * VOCAB);
  // row 3: ties (ten tokens share the maximum, more tokens share the next value)
  for (let v = 0; v < VOCAB; v++) logits[3 * VOCAB + v] = v % 97 === 5 ? 4 : v % 13 === 0 ? 3 : Math.min(logits[3 * VOCAB + v]!, 2);
  const tops = [0, 1, 5, 20, NO_LOGPROBS, 20];
  const sampled = [3, 999, 0, 5, 7, 500];
  const params = tops.map((k): LogitParams => ({ ...NEUTRAL_LOGIT_PARAMS, topLogprobs: k }));
  const lb = gpu.upload('logits', logits), pb = gpu.upload('params', packLogitParams(params)), tb = gpu.upload('tokens', Uint32Array.from(sampled));
  const out = gpu.upload('out', new Uint32Array(R * LOGPROBS_WORDS).fill(0xdeadbeef));
  await gpu.run([tokenLogprobs({ logits: lb, params: pb, tokens: tb, out, rows: R, vocab: VOCAB })]);
  const words = await gpu.readU32(out, 0, R * LOGPROBS_WORDS);
  let worst = 0;
  for (let i = 0; i < R; i++) {
    const k = tops[i]!;
    if (k === NO_LOGPROBS) {
      t.is(words[i * LOGPROBS_WORDS], 0xdeadbeef, 'a row without logprobs is not written');
      continue;
    }
    const row = logits.subarray(i * VOCAB, (i + 1) * VOCAB);
    const lp = logSoftmax(row);
    const got = unpackLogprobs(words, i, k);
    worst = Math.max(worst, Math.abs(got.logprob - lp[sampled[i]!]!));
    t.deepEqual(got.top.map((e) => e.id), topIds(row, k), `row ${i} top ids`);
    for (const e of got.top) worst = Math.max(worst, Math.abs(e.logprob - lp[e.id]!));
  }
  // measured on lavapipe: 1.55e-6 (f32 exp, sum and log over a 1000-token row); bound 5x that
  t.log(`worst logprob error ${worst.toExponential(2)}`);
  t.true(worst <= 8e-6, `logprob error ${worst}`);
  gpu.destroy(lb, pb, tb, out);
});

test('token-logprobs: infinite and NaN logits give finite logprobs (the wire refuses NaN)', async (t) => {
  const gpu = await testGpu();
  const row = Float32Array.from(randomArray(VOCAB, 77, 3));
  row[10] = Infinity;
  row[11] = Number.NaN;
  row[12] = -Infinity;
  const lb = gpu.upload('logits', row), tb = gpu.upload('tokens', Uint32Array.of(10));
  const pb = gpu.upload('params', packLogitParams([{ ...NEUTRAL_LOGIT_PARAMS, topLogprobs: 3 }]));
  const out = gpu.buffer('out', LOGPROBS_WORDS * 4);
  await gpu.run([tokenLogprobs({ logits: lb, params: pb, tokens: tb, out, rows: 1, vocab: VOCAB })]);
  const got = unpackLogprobs(await gpu.readU32(out, 0, LOGPROBS_WORDS), 0, 3);
  t.is(got.logprob, 0); // +inf reads as 2^126: all the mass
  t.is(got.top[0]!.id, 10);
  t.true([got.logprob, ...got.top.map((e) => e.logprob)].every(Number.isFinite));
  gpu.destroy(lb, tb, pb, out);
});

test('logit params: invalid settings throw naming the field', (t) => {
  t.throws(() => packLogitParams([{ ...NEUTRAL_LOGIT_PARAMS, repetitionPenalty: 0 }]), { message: /repetitionPenalty/ });
  t.throws(() => packLogitParams([{ ...NEUTRAL_LOGIT_PARAMS, frequencyPenalty: 1 }]), { message: /countsRow/ });
  t.throws(() => packLogitParams([{ ...NEUTRAL_LOGIT_PARAMS, topLogprobs: 21 }]), { message: /topLogprobs/ });
  t.throws(() => packLogitBias([[1000, 1]], VOCAB), { message: /outside/ });
  t.is(NO_COUNTS, 0xffffffff);
});
