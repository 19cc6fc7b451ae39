// The step cache (DecodeModel's recorded forwards): steps encoded from recordings give bit-identical tokens,
// logits and dispatch counts to steps whose programs are rebuilt every time, across batch sizes that come and
// go (more than the cache keeps, so recordings are dropped and made again), KV scratch growth (which drops
// them all), tokens fed from the previous step on the GPU, and seeded sampling beside greedy.
import test from 'ava';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { FIXTURE_DIR, rng, tempDir, writeRandomCheckpoint } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import { DecodeModel, type DecodeStepInput } from '../../src/engine/decode-model.js';

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

test('step cache - recorded forwards decode exactly as rebuilt ones, through evictions and scratch growth', async (t) => {
  const dir = tempDir(t);
  writeRandomCheckpoint(dir, { preset: 'v2-qlora-yarn-grouped', seed: 7, overrides: { moe_intermediate_size: 32 } });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE_DIR, f), join(dir, f));
  const gpu = await testGpu();
  const { folder, model: prefill } = loadPrefillModel(gpu, dir, { ropeFreqPrecision: 'f32' });
  const cfg = folder.config;
  // 3 KV splits: the split scratch grows with the batch, so a larger batch than any before drops the recordings
  const opts = { maxBatch: 4, maxContext: 64, pageSize: 16, kvDtype: 'bf16', numPages: 16, kvSplits: 3, ropeFreqPrecision: 'f32' } as const;
  const cached = await DecodeModel.create(gpu, cfg, prefill.weights, { ...opts, stepCache: 2 });
  const rebuilt = await DecodeModel.create(gpu, cfg, prefill.weights, { ...opts, stepCache: 0 });
  t.teardown(() => {
    cached.release();
    rebuilt.release();
    prefill.dispose();
  });
  const r = rng(3);
  const tables = [0, 1, 2, 3].map((b) => [4 * b, 4 * b + 1, 4 * b + 2, 4 * b + 3]);
  // batch sizes cycling through more (batch, splits) pairs than the cache keeps (2), growing the scratch three
  // times; a shape is recorded at its second step in a row, then reused
  const batches = [1, 1, 1, 2, 2, 2, 1, 2, 3, 3, 1, 1, 2, 3, 3, 2, 2, 4, 4, 1, 4, 4, 1, 1];
  let prevBatch = 0;
  const kept: number[] = [];
  for (const [i, B] of batches.entries()) {
    const fromPrevious = Array.from({ length: B }, (_, b) => (b < prevBatch && b % 2 === 0 ? b : -1));
    const input: DecodeStepInput = {
      tokens: Array.from({ length: B }, () => Math.floor(r() * cfg.vocabSize)),
      fromPrevious,
      positions: Array.from({ length: B }, (_, b) => i + 3 * b),
      pageTables: tables.slice(0, B),
      sampling: Array.from({ length: B }, (_, b) => (b === 1 ? { temperature: 0.8, topK: 20, topP: 0.9, seed: 5, counter: i } : { temperature: 0, topK: 0, topP: 1, seed: 0, counter: 0 })),
      returnLogits: true,
    };
    const d0 = gpu.dispatches;
    const a = await cached.step(input);
    const d1 = gpu.dispatches;
    const b = await rebuilt.step(input);
    const d2 = gpu.dispatches;
    t.deepEqual(Array.from(a.tokens), Array.from(b.tokens), `step ${i} (batch ${B}): tokens`);
    t.deepEqual(bits(a.logits!), bits(b.logits!), `step ${i} (batch ${B}): logits bit for bit`);
    t.is(d1 - d0, d2 - d1, `step ${i}: dispatches`);
    kept.push(cached.recordedForwards);
    prevBatch = B;
  }
  // recorded from the second step at a shape, none in the other model, never more than the 2 asked for
  // (the scratch grows at the first batch of 2, 3 and 4: 0 kept; the second 2-2 evicts the 1, recorded again at the end)
  t.deepEqual(kept, [0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 2, 2, 2, 2, 2, 2, 0, 1, 1, 1, 1, 1, 2]);
  t.is(rebuilt.recordedForwards, 0);
});

test('step cache - a negative or fractional size is refused', async (t) => {
  const gpu = await testGpu();
  const dir = tempDir(t);
  writeRandomCheckpoint(dir, { preset: 'v2-qlora-yarn-grouped', seed: 7, overrides: { moe_intermediate_size: 32 } });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE_DIR, f), join(dir, f));
  const { folder, model: prefill } = loadPrefillModel(gpu, dir, { ropeFreqPrecision: 'f32' });
  t.teardown(() => prefill.dispose());
  for (const stepCache of [-1, 1.5]) {
    await t.throwsAsync(DecodeModel.create(gpu, folder.config, prefill.weights, {
      maxBatch: 1, maxContext: 16, pageSize: 16, kvDtype: 'bf16', numPages: 1, ropeFreqPrecision: 'f32', stepCache,
    }), { message: /stepCache/ });
  }
});
