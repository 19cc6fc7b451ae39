import test, { type ExecutionContext } from 'ava';
import type { Gpu } from '../../src/runtime/index.js';
import {
  packSamplingParams, sampleRowStats, sampleRowStatsBytes, sampleSearches, sampleSpread, sampleSpreadScratchBytes, sampleStatsChunks, sampleTokens, sampleWorkgroupSize,
  samplingUniform, type SampleWorkgroupSize, validateSamplingParams, type SamplingParams,
} from '../../src/kernels/sample/index.js';
import { argmax, inverseCdfToken, samplingDistribution, sanitizeLogit, type SamplingKnobs } from '../reference/index.js';
import { testGpu } from '../../src/testing.js';
import { randomArray, rng } from '@latentwire/testing';

// ---------------------------------------------------------------- helpers

/** f32 logits of awkward spread: uniform in [-scale, scale). */
function randomLogits(n: number, seed: number, scale = 4): Float32Array {
  return Float32Array.from(randomArray(n, seed, scale));
}

type LogitRows = { rowStride?: number; logitsOffset?: number; rowOffset?: number };

/** Both samplers' inputs on the GPU: the logits, the params at rowOffset (rows before it repeat the first), out, row stats. */
function samplerInputs(gpu: Gpu, logits: Float32Array, vocab: number, params: readonly SamplingParams[], opts: LogitRows) {
  const rowOffset = opts.rowOffset ?? 0;
  const rows = params.length;
  return {
    rowOffset, rows,
    lb: gpu.upload('logits', logits),
    pb: gpu.upload('params', packSamplingParams([...Array.from({ length: rowOffset }, () => params[0]!), ...params])),
    out: gpu.buffer('tokens', (rowOffset + rows) * 4),
    stats: gpu.buffer('stats', Math.max(4, sampleRowStatsBytes(rows, vocab))),
  };
}

/**
 * Samples `params.length` rows; logits rows at logitsOffset + r · rowStride. Without `workgroupSize`, twice: the
 * sampler alone, and after the row-stats kernel (the decode step's form), which must give the same tokens. With it,
 * once, after the row stats, with that many threads a row (its sums round differently from 256's: the tests check
 * its draws against the reference as they do the others).
 */
async function sampleOnGpu(
  gpu: Gpu, logits: Float32Array, vocab: number, params: readonly SamplingParams[], opts: LogitRows = {}, workgroupSize?: SampleWorkgroupSize,
): Promise<number[]> {
  const { rowOffset, rows, lb, pb, out, stats } = samplerInputs(gpu, logits, vocab, params, opts);
  const outStats = gpu.buffer('tokens.stats', (rowOffset + rows) * 4);
  await gpu.run([
    ...(workgroupSize ? [] : [sampleTokens({ logits: lb, params: pb, out, rows, vocab, ...opts })]),
    sampleRowStats({ logits: lb, stats, rows, vocab, rowStride: opts.rowStride, logitsOffset: opts.logitsOffset }),
    sampleTokens({ logits: lb, params: pb, out: outStats, rows, vocab, ...opts, stats, ...(workgroupSize ? { workgroupSize } : {}) }),
  ]);
  const viaStats = [...(await gpu.readU32(outStats, rowOffset * 4, rows))];
  const ids = workgroupSize ? viaStats : [...(await gpu.readU32(out, rowOffset * 4, rows))];
  gpu.destroy(lb, pb, out, outStats, stats);
  if (ids.some((id, r) => viaStats[r] !== id)) throw new Error(`the row-stats path drew ${viaStats.join(',')}, the row scan ${ids.join(',')}`);
  return ids;
}

/**
 * The same rows through the spread sampler (sampleSpread: row stats, search dispatches, draw), with only the
 * searches the params use, as the decode step runs it.
 */
async function sampleSpreadOnGpu(
  gpu: Gpu, logits: Float32Array, vocab: number, params: readonly SamplingParams[], opts: LogitRows = {}, maxWorkgroups?: number,
): Promise<number[]> {
  const { rowOffset, rows, lb, pb, out, stats } = samplerInputs(gpu, logits, vocab, params, opts);
  const scratch = gpu.buffer('scratch', sampleSpreadScratchBytes(rows, vocab));
  await gpu.run(sampleSpread({ logits: lb, params: pb, out, rows, vocab, ...opts, stats, scratch, searches: sampleSearches(params, vocab), maxWorkgroups }));
  const ids = [...(await gpu.readU32(out, rowOffset * 4, rows))];
  gpu.destroy(lb, pb, out, stats, scratch);
  return ids;
}

/** Both samplers, each checked the same way by the tests below. */
const FORMS = [
  ['one workgroup a row', (gpu: Gpu, x: Float32Array, vocab: number, params: readonly SamplingParams[], opts?: LogitRows) => sampleOnGpu(gpu, x, vocab, params, opts)],
  ['spread over chunks', (gpu: Gpu, x: Float32Array, vocab: number, params: readonly SamplingParams[], opts?: LogitRows) => sampleSpreadOnGpu(gpu, x, vocab, params, opts)],
] as const;

/** `n` draws of one knob setting: counters 0..n-1 of `seed`. */
function draws(knobs: SamplingKnobs, n: number, seed = 1234): SamplingParams[] {
  return Array.from({ length: n }, (_, c) => ({ ...knobs, seed, counter: c }));
}

/**
 * A top_p halfway between two of the reference's cumulative masses (top-k set, distinct values downwards), near
 * `want`, so that f32 sums cannot move the nucleus boundary.
 */
function safeTopP(logits: ArrayLike<number>, knobs: Omit<SamplingKnobs, 'topP'>, want: number): number {
  const { probs, kept } = samplingDistribution(logits, { ...knobs, topP: 1 });
  const x = Array.from(logits, sanitizeLogit);
  const byValue = new Map<number, number>();
  for (const i of kept) byValue.set(x[i]!, (byValue.get(x[i]!) ?? 0) + probs[i]!);
  const cums: number[] = [];
  let cum = 0;
  for (const v of [...byValue.keys()].sort((a, b) => b - a)) cums.push((cum += byValue.get(v)!));
  let j = cums.findIndex((c) => c >= want);
  j = Math.max(1, j < 0 ? cums.length - 1 : j);
  return Math.fround((cums[j - 1]! + cums[j]!) / 2);
}

/**
 * Checks every draw is in the reference's kept set and that u falls in the reference CDF interval of the drawn
 * token, within `tol` (f32 sums over the row; ~1e-6 typical). Returns how many draws equal the reference's token.
 */
function checkDraws(t: ExecutionContext, logits: ArrayLike<number>, params: readonly SamplingParams[], got: readonly number[], what: string, tol = 2e-5): number {
  const dist = samplingDistribution(logits, params[0]!);
  t.true(params.every((p) => p.temperature === params[0]!.temperature && p.topK === params[0]!.topK && p.topP === params[0]!.topP));
  t.true(dist.topPMargin > 1e-4, `${what}: top_p margin ${dist.topPMargin}`);
  const kept = new Set(dist.kept);
  const cumAfter = new Float64Array(dist.probs.length);
  let cum = 0;
  dist.probs.forEach((p, i) => (cumAfter[i] = cum += p));
  let exact = 0;
  params.forEach((p, r) => {
    const g = got[r]!, u = samplingUniform(p.seed, p.counter);
    if (!kept.has(g)) return t.fail(`${what}: row ${r} drew ${g}, not kept`);
    if (u < cumAfter[g]! - dist.probs[g]! - tol || u >= cumAfter[g]! + tol) t.fail(`${what}: row ${r} drew ${g}, u ${u} outside its CDF interval`);
    if (inverseCdfToken(dist.probs, u).token === g) exact++;
  });
  return exact;
}

// ---------------------------------------------------------------- CPU: params and the random number

test('sample - invalid params throw RangeError naming the field', (t) => {
  const ok: SamplingParams = { temperature: 0.7, topK: 50, topP: 0.9, seed: 1, counter: 2 };
  t.notThrows(() => validateSamplingParams(ok));
  t.notThrows(() => packSamplingParams([ok, { ...ok, temperature: 0, topK: 0, topP: 1, seed: 0xffffffff, counter: 0 }]));
  const cases: [Partial<SamplingParams>, keyof SamplingParams][] = [
    [{ temperature: -0.1 }, 'temperature'], [{ temperature: Infinity }, 'temperature'], [{ temperature: NaN }, 'temperature'],
    [{ topK: -1 }, 'topK'], [{ topK: 2.5 }, 'topK'], [{ topK: 2 ** 32 }, 'topK'],
    [{ topP: 0 }, 'topP'], [{ topP: 1.01 }, 'topP'], [{ topP: NaN }, 'topP'], [{ topP: -0.5 }, 'topP'],
    [{ seed: -1 }, 'seed'], [{ seed: 2 ** 32 }, 'seed'], [{ seed: 0.5 }, 'seed'],
    [{ counter: -1 }, 'counter'], [{ counter: 2 ** 32 }, 'counter'], [{ counter: NaN }, 'counter'],
  ];
  for (const [over, field] of cases) {
    const err = t.throws(() => packSamplingParams([ok, { ...ok, ...over }]), { instanceOf: RangeError });
    t.regex(err!.message, new RegExp(`row 1: ${field} `), JSON.stringify(over));
  }
});

test('sample - samplingUniform is in [0, 1), uniform over counters and differs across seeds', (t) => {
  const n = 1 << 16, bins = new Array<number>(64).fill(0);
  let sum = 0;
  for (let c = 0; c < n; c++) {
    const u = samplingUniform(42, c);
    t.true(u >= 0 && u < 1 && Number.isInteger(u * 2 ** 24));
    bins[Math.floor(u * 64)]!++;
    sum += u;
  }
  const e = n / 64, chi2 = bins.reduce((s, b) => s + (b - e) ** 2 / e, 0);
  t.true(chi2 < 63 + 6 * Math.sqrt(2 * 63), `chi2 ${chi2}`);
  t.true(Math.abs(sum / n - 0.5) < 0.01);
  let same = 0;
  for (let c = 0; c < 1000; c++) if (samplingUniform(1, c) === samplingUniform(2, c)) same++;
  t.true(same < 3);
  t.is(samplingUniform(7, 9), samplingUniform(7, 9));
});

test('sample - one pipeline for every size (sizes are uniforms)', (t) => {
  const b = { size: 1 << 30 } as GPUBuffer;
  const a = sampleTokens({ logits: b, params: b, out: b, rows: 3, vocab: 1000 });
  const c = sampleTokens({ logits: b, params: b, out: b, rows: 64, vocab: 129280, rowStride: 0, rowOffset: 5 });
  t.is(a.shader, c.shader);
  t.throws(() => sampleTokens({ logits: { size: 400 } as GPUBuffer, params: b, out: b, rows: 2, vocab: 100 }), { instanceOf: RangeError, message: /logits needs/ });
  t.throws(() => sampleTokens({ logits: b, params: { size: 32 } as GPUBuffer, out: b, rows: 2, vocab: 100 }), { instanceOf: RangeError, message: /params/ });
  t.throws(() => sampleTokens({ logits: b, params: b, out: b, rows: 2, vocab: 0 }), { instanceOf: RangeError, message: /vocab/ });
  // the row-stats form: one pipeline each, and a stats buffer too small is refused by both kernels
  const s = sampleRowStats({ logits: b, stats: b, rows: 3, vocab: 1000 });
  t.is(s.shader, sampleRowStats({ logits: b, stats: b, rows: 64, vocab: 129280, rowStride: 0 }).shader);
  t.deepEqual(s.workgroups, [1, 3]);
  t.deepEqual(sampleRowStats({ logits: b, stats: b, rows: 2, vocab: 102400 }).workgroups, [50, 2]);
  t.is(sampleTokens({ logits: b, params: b, out: b, rows: 3, vocab: 1000, stats: b }).shader, sampleTokens({ logits: b, params: b, out: b, rows: 9, vocab: 5, stats: b }).shader);
  t.not(sampleTokens({ logits: b, params: b, out: b, rows: 3, vocab: 1000, stats: b }).shader, a.shader);
  const small = { size: sampleRowStatsBytes(2, 102400) - 4 } as GPUBuffer;
  t.throws(() => sampleRowStats({ logits: b, stats: small, rows: 2, vocab: 102400 }), { instanceOf: RangeError, message: /stats needs/ });
  t.throws(() => sampleTokens({ logits: b, params: b, out: b, rows: 2, vocab: 102400, stats: small }), { instanceOf: RangeError, message: /stats needs/ });
  t.throws(() => sampleRowStats({ logits: b, stats: b, rows: 2, vocab: 0 }), { instanceOf: RangeError, message: /vocab/ });
});

// ---------------------------------------------------------------- GPU (serial: concurrent submits crawl on lavapipe)

test.serial('sample - greedy is argmax with ties to the lowest index, -inf / NaN / huge logits included', async (t) => {
  const gpu = await testGpu();
  const V = 1000, rows = 7, pad = 3;
  const x = randomLogits(pad + rows * V, 7);
  const at = (r: number, c: number) => pad + r * V + c;
  x[at(0, 17)] = 9; x[at(0, 700)] = 9; x[at(0, 3)] = 8.9999;           // tie: 17
  x[at(1, 999)] = 5;                                                    // last column
  for (let c = 0; c < V; c++) x[at(2, c)] = -Infinity;                  // all masked: 0
  for (let c = 0; c < V; c++) x[at(3, c)] = c % 3 ? -Infinity : NaN;   // NaN and -inf: 0
  x[at(4, 400)] = Infinity; x[at(4, 20)] = 3e38;                        // +inf ties the clamped huge value: 20
  x[at(5, 0)] = 0; x[at(5, 1)] = -0; for (let c = 2; c < V; c++) x[at(5, c)] = -1; // ±0 tie: 0
  x[at(6, 5)] = -0; for (let c = 0; c < V; c++) if (c !== 5) x[at(6, c)] = c === 9 ? 0 : -2;   // -0 == +0: 5
  const params = Array.from({ length: rows }, (_, r) => ({ temperature: 0, topK: r, topP: r % 2 ? 0.5 : 1, seed: r, counter: r }));
  const want = Array.from({ length: rows }, (_, r) => argmax(Array.from(x.subarray(at(r, 0), at(r, V)), sanitizeLogit)));
  t.deepEqual(want, [17, 999, 0, 0, 20, 0, 5]);
  for (const [form, sample] of FORMS) t.deepEqual(await sample(gpu, x, V, params, { logitsOffset: pad }), want, form);
});

test.serial('sample - row stats: the maximum tied across chunks goes to the lowest index; partial last chunks', async (t) => {
  const gpu = await testGpu();
  const C = 2048;
  t.is(sampleStatsChunks(C), 1);
  t.is(sampleStatsChunks(C + 1), 2);
  // vocab: one logit past a chunk, two chunks and a partial, fewer logits than a workgroup's threads
  for (const V of [C + 1, 2 * C + 777, 100]) {
    const rows = 5;
    const x = randomLogits(rows * V, V, 3);
    const at = (r: number, c: number) => r * V + c;
    x[at(0, V - 1)] = 9;                                                  // the last logit, alone in its chunk
    x[at(1, Math.min(V - 1, C + 5))] = 9; x[at(1, V - 1)] = 9; x[at(1, 7)] = 9; // ties in different chunks: 7
    x[at(2, Math.min(V - 1, C))] = 9; x[at(2, Math.min(V - 1, C - 1))] = 9;     // ties across a boundary
    for (let c = 0; c < V; c++) x[at(3, c)] = -Infinity;                 // all tied: 0
    x[at(4, Math.floor(V / 2))] = NaN;
    const params = Array.from({ length: rows }, (_, r) => ({ temperature: 0, topK: 0, topP: 1, seed: r, counter: 0 }));
    for (const [form, sample] of FORMS) {
      const got = await sample(gpu, x, V, params);
      t.deepEqual(got, Array.from({ length: rows }, (_, r) => argmax(Array.from(x.subarray(at(r, 0), at(r, V)), sanitizeLogit))), `${form}, vocab ${V}`);
      if (V > C) t.deepEqual(got.slice(0, 3), [V - 1, 7, Math.min(V - 1, C - 1)]);
    }
  }
});

test.serial('sample - top_k = 1 gives the argmax at any temperature and top_p', async (t) => {
  const gpu = await testGpu();
  const V = 1031, rows = 12;
  const x = randomLogits(rows * V, 8, 2);
  const params = Array.from({ length: rows }, (_, r) => ({
    temperature: [1e-20, 0.01, 0.7, 1, 5, 1e6][r % 6]!, topK: 1, topP: r < 6 ? 1 : 0.3, seed: 99, counter: r,
  }));
  const want = Array.from({ length: rows }, (_, r) => argmax(x.subarray(r * V, (r + 1) * V)));
  for (const [form, sample] of FORMS) t.deepEqual(await sample(gpu, x, V, params), want, form);
});

test.serial('sample - draws stay in the reference kept set and match its inverse CDF (top-k ties, top-p, masks)', async (t) => {
  const gpu = await testGpu();
  const V = 777, n = 192;
  const x = randomLogits(V, 21, 3);
  // a block of ties straddling the 40th largest value, and masked tokens
  const sorted = [...x].sort((a, b) => b - a);
  for (const i of [5, 50, 300, 301, 776]) x[i] = sorted[39]!;
  for (let i = 100; i < 160; i++) x[i] = -Infinity;
  x[200] = NaN;
  const configs: SamplingKnobs[] = [
    { temperature: 1, topK: 40, topP: 1 },
    { temperature: 0.6, topK: 0, topP: safeTopP(x, { temperature: 0.6, topK: 0 }, 0.8) },
    { temperature: 1.3, topK: 40, topP: safeTopP(x, { temperature: 1.3, topK: 40 }, 0.5) },
    { temperature: 2, topK: 0, topP: 1 },
    { temperature: 0.05, topK: 0, topP: safeTopP(x, { temperature: 0.05, topK: 0 }, 0.95) },
  ];
  for (const [i, knobs] of configs.entries()) {
    const params = draws(knobs, n, 1000 + i);
    for (const [form, sample] of FORMS) {
      const got = await sample(gpu, x, V, params, { rowStride: 0 });
      t.true(checkDraws(t, x, params, got, `${form} ${JSON.stringify(knobs)}`) >= n - 1, `${form} ${JSON.stringify(knobs)}: draws equal to the reference token`);
    }
  }
  const ties = samplingDistribution(x, configs[0]!).kept;
  t.true(ties.length > 40 && [5, 50, 300, 301, 776].every((i) => ties.includes(i)), 'boundary ties kept');
});

test.serial('sample - tiny vocab: every kept token is drawn and no other', async (t) => {
  const gpu = await testGpu();
  const x = Float32Array.of(1.5, -0.5, 0.25, 2, 2, -Infinity, 0.75, 1.5, -3, 0.1, 1.0, 0);
  const configs: SamplingKnobs[] = [
    { temperature: 1, topK: 4, topP: 1 },        // 2, 2, 1.5, 1.5 (ties at the 4th)
    { temperature: 1, topK: 3, topP: 1 },        // 2, 2, 1.5, 1.5 (the 3rd largest is 1.5: both kept)
    { temperature: 0.8, topK: 0, topP: safeTopP(x, { temperature: 0.8, topK: 0 }, 0.7) },
    { temperature: 1, topK: 6, topP: safeTopP(x, { temperature: 1, topK: 6 }, 0.9) },
    { temperature: 3, topK: 0, topP: 1 },
    { temperature: 1e-6, topK: 0, topP: 1 },      // the tied maxima 3 and 4, half each
    { temperature: 1, topK: 0, topP: 1e-6 },      // likewise: the nucleus is the top value, ties kept
  ];
  for (const knobs of configs) {
    const params = draws(knobs, 400, 5);
    const d = samplingDistribution(x, knobs);
    for (const [form, sample] of FORMS) {
      const got = await sample(gpu, x, x.length, params, { rowStride: 0 });
      const what = `${form} ${JSON.stringify(knobs)}`;
      t.deepEqual([...new Set(got)].sort((a, b) => a - b), d.kept.filter((i) => d.probs[i]! > 0.02), what);
      t.is(checkDraws(t, x, params, got, what), params.length, what);
    }
  }
  t.deepEqual(samplingDistribution(x, configs[1]!).kept, [0, 3, 4, 7]);
  // a fully masked row: every token ties, so all are kept and equally likely
  const masked = Float32Array.of(-Infinity, NaN, -Infinity, -1e39, -Infinity);
  const params = draws({ temperature: 1, topK: 2, topP: 1 }, 200, 6);
  for (const [form, sample] of FORMS) {
    const got = await sample(gpu, masked, masked.length, params, { rowStride: 0 });
    t.deepEqual([...new Set(got)].sort(), [0, 1, 2, 3, 4], form);
    t.is(checkDraws(t, masked, params, got, `${form}, masked row`), params.length);
  }
});

test.serial('sample - empirical distribution over 4096 counters matches the reference (chi-square)', async (t) => {
  const gpu = await testGpu();
  const V = 40, N = 4096;
  const x = randomLogits(V, 33, 1.5);
  const base = { temperature: 0.9, topK: 25 };
  const knobs = { ...base, topP: safeTopP(x, base, 0.85) };
  const { probs, kept } = samplingDistribution(x, knobs);
  const df = kept.length - 1;
  t.true(df >= 8, `kept ${kept.length}`);
  for (const [form, sample] of FORMS) {
    const got = await sample(gpu, x, V, draws(knobs, N, 77), { rowStride: 0 });
    const counts = new Array<number>(V).fill(0);
    for (const g of got) counts[g]!++;
    t.true(counts.every((c, i) => c === 0 || probs[i]! > 0), `${form}: only kept tokens`);
    let chi2 = 0, maxErr = 0;
    for (const i of kept) {
      chi2 += (counts[i]! - N * probs[i]!) ** 2 / (N * probs[i]!);
      maxErr = Math.max(maxErr, Math.abs(counts[i]! / N - probs[i]!));
    }
    // ~6 standard deviations of a chi-square with df degrees of freedom; 4/sqrt(N) bounds any frequency error
    t.true(chi2 < df + 6 * Math.sqrt(2 * df), `${form}: chi2 ${chi2.toFixed(1)} with ${df} dof`);
    t.true(maxErr < 4 / Math.sqrt(N), `${form}: max frequency error ${maxErr}`);
    t.log(`${form}: ${kept.length} kept, chi2 ${chi2.toFixed(1)} (${df} dof), max frequency error ${maxErr.toFixed(4)}`);
  }
});

test.serial('sample - same (seed, counter) gives the same token whatever the row, batch or run', async (t) => {
  const gpu = await testGpu();
  const V = 613, rows = 24;
  const x = randomLogits(rows * V, 44, 2.5);
  const r = rng(3);
  const params = Array.from({ length: rows }, (_, i) => ({
    temperature: [0, 0.5, 1, 1.7][i % 4]!, topK: [0, 10, 100][i % 3]!, topP: [1, 0.9, 0.6][(i >> 1) % 3]!,
    seed: Math.floor(r() * 2 ** 32), counter: Math.floor(r() * 1000),
  }));
  const order = [...params.keys()].reverse();
  const xr = new Float32Array(rows * V);
  order.forEach((src, dst) => xr.set(x.subarray(src * V, (src + 1) * V), dst * V));
  for (const [form, sample] of FORMS) {
    const first = await sample(gpu, x, V, params);
    t.deepEqual(await sample(gpu, x, V, params), first, `${form}: same run twice`);
    // reversed order inside a longer batch, written at a row offset
    const reversed = await sample(gpu, xr, V, order.map((i) => params[i]!), { rowOffset: 9 });
    t.deepEqual(order.map((_, dst) => reversed[dst]), order.map((src) => first[src]), form);
    // each row alone (in the spread form, with only the searches that row uses)
    for (const i of [1, 6, 17]) t.is((await sample(gpu, x.subarray(i * V, (i + 1) * V), V, [params[i]!]))[0], first[i], `${form}: row ${i} alone`);
    // and against the reference
    params.forEach((p, i) => {
      const row = x.subarray(i * V, (i + 1) * V);
      const d = samplingDistribution(row, p);
      t.true(d.kept.includes(first[i]!), `${form}: row ${i}`);
    });
  }
});

test.serial('sample - 1024 threads a row: greedy, top-k and top-p draws match the reference as 256 do', async (t) => {
  const gpu = await testGpu();
  const limits = gpu.limits;
  t.is(sampleWorkgroupSize({ maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupStorageSize: 32768 }), 1024);
  t.is(sampleWorkgroupSize({ maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256, maxComputeWorkgroupStorageSize: 49152 }), 256);
  t.is(sampleWorkgroupSize({ maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupStorageSize: 16384 }), 256);
  if (sampleWorkgroupSize(limits) !== 1024) return t.pass(`this device holds 256 threads a row (limits ${limits.maxComputeInvocationsPerWorkgroup}, ${limits.maxComputeWorkgroupStorageSize} B)`);
  const V = 5003, n = 64;
  const x = randomLogits(V, 71, 3);
  for (let i = 0; i < V; i += 97) x[i] = -Infinity;
  const configs: SamplingKnobs[] = [
    { temperature: 0, topK: 0, topP: 1 },
    { temperature: 0.8, topK: 50, topP: 1 },
    { temperature: 0.2, topK: 0, topP: safeTopP(x, { temperature: 0.2, topK: 0 }, 0.5) },
    { temperature: 1.1, topK: 200, topP: safeTopP(x, { temperature: 1.1, topK: 200 }, 0.8) },
  ];
  for (const [i, knobs] of configs.entries()) {
    const params = draws(knobs, n, 300 + i);
    const got = await sampleOnGpu(gpu, x, V, params, { rowStride: 0 }, 1024);
    if (knobs.temperature === 0) t.true(got.every((g) => g === argmax(Array.from(x, sanitizeLogit))), 'greedy');
    else t.true(checkDraws(t, x, params, got, JSON.stringify(knobs)) >= n - 1, `${JSON.stringify(knobs)}: draws equal to the reference token`);
  }
});

test.serial('sample - DeepSeek-V2 vocab (102400): realistic settings match the reference', async (t) => {
  const gpu = await testGpu();
  const V = 102400;
  // an LM-like row: a long tail in [-4, 4) and 64 head tokens in [8, 12) holding about two thirds of the mass
  // (so a top_p between head tokens has a margin that f32 sums over the tail cannot cross)
  const x = randomLogits(3 * V, 55, 4);
  const r = rng(56);
  for (let i = 0; i < 3 * 64; i++) x[Math.floor(r() * 3 * V)] = 8 + 4 * r();
  const knobsOf = (row: Float32Array, i: number): SamplingKnobs => {
    if (i === 0) return { temperature: 0.7, topK: 50, topP: safeTopP(row, { temperature: 0.7, topK: 50 }, 0.9) };
    if (i === 1) return { temperature: 1, topK: 0, topP: safeTopP(row, { temperature: 1, topK: 0 }, 0.5) };
    return { temperature: 1, topK: 0, topP: 1 };
  };
  const rows = [0, 1, 2].map((i) => x.subarray(i * V, (i + 1) * V));
  const params = rows.flatMap((row, i) => draws(knobsOf(row, i), 6, 8 + i));
  // 6 draws of each of the 3 rows
  const xs = new Float32Array(params.length * V);
  params.forEach((_, j) => xs.set(rows[Math.floor(j / 6)]!, j * V));
  for (const [form, sample] of FORMS) {
    const got = await sample(gpu, xs, V, params);
    const exact = rows.map((row, i) => checkDraws(t, row, params.slice(6 * i, 6 * i + 6), got.slice(6 * i, 6 * i + 6), `${form}, row ${i}`));
    t.log(`${form}: draws equal to the reference token: ${exact.join(', ')} of 6 per row`);
    t.true(exact[0]! + exact[1]! === 12, `${form}: head-only nuclei: every draw exact`);
  }
});

test.serial('sample - spread: a workgroup taking several chunks draws the same tokens; the run is checked', async (t) => {
  const gpu = await testGpu();
  const V = 5 * 2048 + 77, rows = 24;
  const x = randomLogits(rows * V, 91, 4);
  const r = rng(92);
  for (let i = 0; i < rows * 20; i++) x[Math.floor(r() * rows * V)] = 6 + 3 * r();
  const params = Array.from({ length: rows }, (_, i) => ({
    temperature: [0, 0.7, 1, 1.3][i % 4]!, topK: [0, 40, 3000][i % 3]!, topP: [1, 0.9, 0.5][(i >> 2) % 3]!, seed: 7, counter: i,
  }));
  const one = await sampleSpreadOnGpu(gpu, x, V, params);
  for (const maxWorkgroups of [rows * 2, 5, 1]) t.deepEqual(await sampleSpreadOnGpu(gpu, x, V, params, {}, maxWorkgroups), one, `at most ${maxWorkgroups} workgroups`);
  params.forEach((p, i) => t.true(samplingDistribution(x.subarray(i * V, (i + 1) * V), p).kept.includes(one[i]!), `row ${i}`));
  // dispatches: row stats, one search step a 16-way step of each search used plus the last, the draw
  const b = { size: 1 << 30 } as GPUBuffer;
  const args = { logits: b, params: b, out: b, rows: 2, vocab: 102400, stats: b, scratch: b };
  t.is(sampleSpread({ ...args, searches: { topK: false, topP: false } }).length, 3);
  t.is(sampleSpread({ ...args, searches: { topK: false, topP: true } }).length, 11);
  t.is(sampleSpread(args).length, 19);
  t.deepEqual(sampleSpread({ ...args, maxWorkgroups: 7 })[1]!.workgroups, [4, 2]);
  t.deepEqual(sampleSearches([{ temperature: 0, topK: 5, topP: 0.5 }, { temperature: 1, topK: 102400, topP: 1 }], 102400), { topK: false, topP: false });
  t.throws(() => sampleSpread({ ...args, scratch: { size: sampleSpreadScratchBytes(2, 102400) - 4 } as GPUBuffer }), { instanceOf: RangeError, message: /scratch needs/ });
  t.throws(() => sampleSpread({ ...args, maxWorkgroups: 0 }), { instanceOf: RangeError, message: /maxWorkgroups/ });
});
