// Compile ahead of traffic: after loadDecodeStack (which the decode node runs before it heartbeats), every
// compiled pipeline has been dispatched once (the warm-up) and no decode step of any batch size or context
// compiles a pipeline, so a first request never waits for a shader compile.
import test from 'ava';
import { FIXTURE_DIR } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import { pagesFor } from '@latentwire/protocol';
import { decodeSettings } from '../../src/config.js';
import { loadDecodeStack } from '../../src/engine/load.js';

test('compile ahead - loading the stack compiles every pipeline a step of any batch and context uses', async (t) => {
  const gpu = await testGpu();
  const settings = { pageSize: 16, maxBatch: 4, numPages: 64, kvDtype: 'fp8_e4m3', maxContext: 256 } as const;
  const stack = await loadDecodeStack(gpu, FIXTURE_DIR, (cfg) => decodeSettings(cfg, {}, settings));
  t.teardown(() => stack.release());
  const { model } = stack;
  const compiled = gpu.pipelines.size;
  t.true(stack.compiled.shaders > 0 && compiled >= stack.compiled.shaders, `${stack.compiled.shaders} shaders, ${compiled} pipelines`);
  t.log(`${stack.compiled.shaders} decode shaders compiled ahead in ${Math.round(stack.compiled.ms)} ms`);
  // and dispatched once each (a driver that compiles at the first dispatch, as llvmpipe does, has compiled them)
  t.deepEqual(gpu.pipelines.undispatched(), [], 'the warm-up dispatched every compiled pipeline');
  t.true(stack.warmed.steps > 0 && stack.warmed.steps < settings.maxBatch * 4, `${stack.warmed.steps} steps: only those that dispatch a shader not dispatched before`);
  t.log(`warm-up: ${stack.warmed.steps} steps in ${Math.round(stack.warmed.ms)} ms`);

  const perSeq = pagesFor(settings, settings.maxContext);
  // contexts from one token to the whole window: the split policy picks 1 split for short ones, more for long
  // greedy steps, and steps with sampled rows (the spread sampler, its searches as the rows need them)
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  const sampled = [{ temperature: 0.8, topK: 20, topP: 0.9 }, { temperature: 1, topK: 0, topP: 0.5 }, { temperature: 0.7, topK: 0, topP: 1 }];
  for (const mode of ['greedy', 'sampled'] as const) {
    for (const B of [1, 2, 3, 4]) {
      for (const position of [0, 17, 100, settings.maxContext - 1]) {
        const out = await model.step({
          tokens: Array.from({ length: B }, (_, b) => 5 + b),
          positions: new Array(B).fill(position),
          pageTables: Array.from({ length: B }, (_, b) => Array.from({ length: perSeq }, (_, i) => (b * perSeq + i) % settings.numPages)),
          sampling: Array.from({ length: B }, (_, b) => ({ ...(mode === 'greedy' || b === 3 ? greedy : sampled[(b + position) % 3]!), seed: b, counter: 0 })),
        });
        t.is(out.tokens.length, B);
        t.is(gpu.pipelines.size, compiled, `${mode}: batch ${B}, position ${position}: no new pipeline`);
      }
    }
  }
});
