// The real tiny checkpoint against transformers' own float64 outputs (reference.json).
import test from 'ava';
import { loadPrefillModel } from '../src/prefill/index.js';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { testGpu } from '../src/testing.js';
import { maxAbsDiff } from '@latentwire/testing';

interface Case { prompt: string; input_ids: number[]; prefill_last_logits: number[]; prefill_argmax: number[]; greedy_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

async function model() {
  return loadPrefillModel(await testGpu(), FIXTURE_DIR).model;
}

test.serial('prefill - last logits within 1e-3 and argmax at every position equal transformers', async (t) => {
  const m = await model();
  for (const c of cases) {
    const out = await m.prefill(c.input_ids, { allLogits: true });
    out.release();
    const err = maxAbsDiff(out.lastLogits, c.prefill_last_logits);
    t.log(`${JSON.stringify(c.prompt.slice(0, 20))}: ${c.input_ids.length} tokens, max |Δlogit| ${err.toExponential(2)}`);
    t.true(err < 1e-3, `max error ${err}`);
    t.deepEqual(Array.from(out.argmax!), c.prefill_argmax);
  }
});

test.serial('prefill - greedy generation by repeated full prefill reproduces greedy_ids', async (t) => {
  const m = await model();
  for (const c of cases) {
    const ids = [...c.input_ids];
    const generated: number[] = [];
    for (let i = 0; i < c.greedy_ids.length; i++) {
      const out = await m.prefill(ids);
      out.release();
      let best = 0;
      for (let v = 1; v < out.lastLogits.length; v++) if (out.lastLogits[v]! > out.lastLogits[best]!) best = v;
      generated.push(best);
      ids.push(best);
    }
    t.deepEqual(generated, c.greedy_ids);
  }
});

test.serial('prefill - no GPU memory grows across runs', async (t) => {
  const m = await model();
  const gpu = m.gpu;
  const before = gpu.liveBufferBytes;
  for (let i = 0; i < 5; i++) (await m.prefill(cases[0]!.input_ids)).release();
  t.is(gpu.liveBufferBytes, before);
});

test.serial('prefill - with exact f32 RoPE frequencies the tokens are the same and logits stay within 5e-3', async (t) => {
  // transformers rounds inv_freq to bf16 for a bf16 checkpoint; exact frequencies move logits by ~1e-3
  const m = loadPrefillModel(await testGpu(), FIXTURE_DIR, { ropeFreqPrecision: 'f32' }).model;
  for (const c of cases) {
    const out = await m.prefill(c.input_ids, { allLogits: true });
    out.release();
    t.true(maxAbsDiff(out.lastLogits, c.prefill_last_logits) < 5e-3);
    t.deepEqual(Array.from(out.argmax!), c.prefill_argmax);
  }
});
