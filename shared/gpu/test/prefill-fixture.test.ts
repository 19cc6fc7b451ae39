// The real tiny checkpoint against transformers' own float64 outputs (reference.json). Greedy generation is
// checked by the decode engine's tests against the same greedy_ids (decode-node/test/engine); generating here
// by repeated full prefill compiled a GEMV per prompt length and took minutes on a software adapter.
import test from 'ava';
import { loadPrefillModel } from '../src/prefill/index.js';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { testGpu } from '../src/testing.js';
import { Gpu } from '../src/runtime/index.js';
import { gpuOptionsFromEnv } from '../src/runtime/gpu-env.js';
import { maxAbsDiff } from '@latentwire/testing';

interface Case { prompt: string; input_ids: number[]; prefill_last_logits: number[]; prefill_argmax: number[]; greedy_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

async function model() {
  return loadPrefillModel(await testGpu(), FIXTURE_DIR).model;
}

// Measured max |Δlogit| 2.9e-6 (18 tokens), 2.6e-6 (90), 1.7e-6 (5) on lavapipe; reference.json keeps 6
// decimals, so 1e-6 of any figure is the fixture's own rounding. Bound: 5× the worst.
const LOGIT_BOUND = 1.5e-5;
// With exact f32 frequencies the logits move away from transformers' (bf16-rounded inv_freq): measured max
// 2.2e-3 over the three cases (1.3e-3, 2.2e-3, 4.4e-4); bound 2.3× that, as the move is a real difference.
const EXACT_ROPE_BOUND = 5e-3;

test.serial('prefill - last logits within 1.5e-5 and argmax at every position equal transformers', async (t) => {
  const m = await model();
  for (const c of cases) {
    const out = await m.prefill(c.input_ids, { allLogits: true });
    out.release();
    const err = maxAbsDiff(out.lastLogits, c.prefill_last_logits);
    t.log(`${JSON.stringify(c.prompt.slice(0, 20))}: ${c.input_ids.length} tokens, max |Δlogit| ${err.toExponential(2)}`);
    t.true(err < LOGIT_BOUND, `max error ${err}`);
    t.deepEqual(Array.from(out.argmax!), c.prefill_argmax);
  }
});

test.serial('prefill - no GPU memory grows across runs: released buffers are reused by the next prefill', async (t) => {
  const m = await model();
  const gpu = m.gpu;
  const weights = gpu.liveBufferBytes;
  (await m.prefill(cases[0]!.input_ids)).release();
  const pooled = gpu.liveBufferBytes;
  for (let i = 0; i < 5; i++) (await m.prefill(cases[0]!.input_ids)).release();
  t.is(gpu.liveBufferBytes, pooled);
  m.dispose();
  t.true(gpu.liveBufferBytes < weights, 'dispose frees the pool (and the forward\'s own buffers)');
});

test.serial('prefill - a prefill on buffers a longer prompt left behind equals one on fresh buffers', async (t) => {
  const m = await model();
  const c = cases[0]!;
  const fresh = await m.prefill(c.input_ids, { allLogits: true });
  fresh.release();
  // one token more lands in the same size classes (pooled sizes round up to a quarter octave): its rows, then
  // stale ones past the shorter prompt's end, are what the next prefill finds in the reused buffers
  (await m.prefill([...c.input_ids, c.greedy_ids[0]!], { allLogits: true })).release();
  const live = m.gpu.liveBufferBytes;
  const reused = await m.prefill(c.input_ids, { allLogits: true });
  t.is(m.gpu.liveBufferBytes, live, 'every buffer came from the pool');
  reused.release();
  t.deepEqual(Array.from(reused.lastLogits), Array.from(fresh.lastLogits));
  t.deepEqual(Array.from(reused.argmax!), Array.from(fresh.argmax!));
});

test.serial('prefill - with exact f32 RoPE frequencies the tokens are the same and logits stay within 5e-3', async (t) => {
  // transformers rounds inv_freq to bf16 for a bf16 checkpoint; exact frequencies move logits by ~1e-3
  const m = loadPrefillModel(await testGpu(), FIXTURE_DIR, { ropeFreqPrecision: 'f32' }).model;
  for (const c of cases) {
    const out = await m.prefill(c.input_ids, { allLogits: true });
    out.release();
    const err = maxAbsDiff(out.lastLogits, c.prefill_last_logits);
    t.log(`${c.input_ids.length} tokens, exact frequencies: max |Δlogit| ${err.toExponential(2)}`);
    t.true(err < EXACT_ROPE_BOUND, `max error ${err}`);
    t.deepEqual(Array.from(out.argmax!), c.prefill_argmax);
  }
});

test.serial('prefill - GEMMs split over K (as on a device with idle slots) keep the logits within 1.5e-5 and the argmax', async (t) => {
  // lavapipe has one workgroup slot, where no GEMM splits by default: the same device told it has 64, with up
  // to 4 splits (MATMUL_SPLIT_K_MAX), splits the prompts' GEMMs the way an idle GPU would
  const gpu = await Gpu.create(gpuOptionsFromEnv(process.env));
  Object.defineProperty(gpu, 'matmulLimits', { value: { ...gpu.matmulLimits, workgroupSlots: 64, splitKMax: 4 } });
  const m = loadPrefillModel(gpu, FIXTURE_DIR).model;
  const c = cases[1]!;
  const before = gpu.dispatches;
  const out = await m.prefill(c.input_ids, { allLogits: true });
  out.release();
  const split = gpu.dispatches - before;
  const plain = await model();
  const b2 = plain.gpu.dispatches;
  (await plain.prefill(c.input_ids)).release();
  t.true(split > plain.gpu.dispatches - b2, `split-K adds its sums' dispatches (${split} against ${plain.gpu.dispatches - b2})`);
  const err = maxAbsDiff(out.lastLogits, c.prefill_last_logits);
  t.log(`${c.input_ids.length} tokens, split-K: max |Δlogit| ${err.toExponential(2)}`);
  t.true(err < LOGIT_BOUND, `max error ${err}`);
  t.deepEqual(Array.from(out.argmax!), c.prefill_argmax);
  m.dispose();
  gpu.dispose();
});

test.serial('prefill - choices: n draws from the last logits, draw i equal to a prefill sampling alone with seed + i (tokens and logprobs)', async (t) => {
  const m = await model();
  const ids = cases[0]!.input_ids;
  const sample = { temperature: 1.5, topK: 0, topP: 1, seed: 0xfffffffe, counter: 0, logprobs: 2, presencePenalty: 0.5 };
  const out = await m.prefill(ids, { sample, choices: 4 });
  out.release();
  t.is(out.choices!.length, 4);
  t.is(out.token, out.choices![0]!.token);
  t.deepEqual(out.logprobs, out.choices![0]!.logprobs);
  for (let i = 0; i < 4; i++) {
    const solo = await m.prefill(ids, { sample: { ...sample, seed: (sample.seed + i) >>> 0 } });
    solo.release();
    t.is(out.choices![i]!.token, solo.token!, `draw ${i}`);
    t.deepEqual(out.choices![i]!.logprobs, solo.logprobs, `draw ${i}`);
  }
  t.true(new Set(out.choices!.map((c) => c.token)).size > 1, 'the seeds draw different tokens');
  const plain = await m.prefill(ids, { sample });
  plain.release();
  t.is(plain.choices, null, 'no choices unless asked');
});

test.serial('prefill - prompt logprobs: token i + 1 under position i\'s raw logits, top alternatives included, equal a float64 log-softmax of the reference', async (t) => {
  const m = await model();
  const c = readFixtureJson<{ cases: (Case & { step_logits: number[][] })[] }>('reference.json').cases[0]!;
  // the reference's greedy tokens appended to the prompt: their prompt logprobs use the logits that chose them
  const k = 3;
  const ids = [...c.input_ids, ...c.greedy_ids.slice(0, k)];
  const out = await m.prefill(ids, { promptLogprobs: 2, sample: { temperature: 0, topK: 0, topP: 1, seed: 1, counter: 0, presencePenalty: 1 } });
  out.release();
  t.is(out.promptLogprobs!.length, ids.length - 1);
  t.is(out.argmax, null, 'argmax only with allLogits');
  let worst = 0;
  for (let j = 0; j < k; j++) {
    const logits = c.step_logits[j]!;
    const mx = Math.max(...logits);
    const lse = mx + Math.log(logits.reduce((s, v) => s + Math.exp(v - mx), 0));
    const e = out.promptLogprobs![c.input_ids.length - 1 + j]!;
    worst = Math.max(worst, Math.abs(e.logprob - (logits[c.greedy_ids[j]!]! - lse)));
    const order = logits.map((_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
    t.deepEqual(e.top.map((x) => x.id), order.slice(0, 2));
    for (const x of e.top) worst = Math.max(worst, Math.abs(x.logprob - (logits[x.id]! - lse)));
  }
  t.true(worst < 1e-4, `worst ${worst}`);
  t.true(out.promptLogprobs!.every((e) => e.logprob <= 0 && e.top.length === 2));
  const single = await m.prefill([c.input_ids[0]!], { promptLogprobs: 2 });
  single.release();
  t.deepEqual(single.promptLogprobs, [], 'a one-token prompt has none');
});
