// Random tiny V2 (q_lora, YaRN, group-limited routing) and V3 (sigmoid, noaux_tc, bias, normalized top-k)
// checkpoints: the GPU prefill against the float64 reference, logits and every layer's latent KV rows.
import test from 'ava';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPrefillModel } from '../src/prefill/index.js';
import { loadConfig } from '@latentwire/model';
import { writeRandomCheckpoint } from '@latentwire/testing';
import { FIXTURE_DIR, tempDir } from '@latentwire/testing';
import { testGpu } from '../src/testing.js';
import { maxAbsDiff, rng } from '@latentwire/testing';
import { mapWeights, referenceForward } from './reference/index.js';

// Measured on lavapipe over T = 1, 11, 37: max |Δlogit| 1.6e-6 (V2) / 1.5e-6 (V3), max |Δlatent| 2.0e-6 /
// 2.1e-6 (the error grows with T). Bound: 5× the worst of both.
const BOUND = 1e-5;

for (const preset of ['v2-qlora-yarn-grouped', 'v3-noaux'] as const) {
  test(`prefill - ${preset} matches the float64 reference (logits and latent rows)`, async (t) => {
    const dir = tempDir(t);
    // the MoE kernels vectorize by 8 along hidden and intermediate (every real DeepSeek width is a multiple)
    const ckpt = writeRandomCheckpoint(dir, { preset, seed: 3, overrides: { moe_intermediate_size: 32 } });
    // the loader wants a tokenizer; the fixture's serves (token ids stay below this model's vocab)
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE_DIR, f), join(dir, f));
    const cfg = loadConfig(dir);
    const gpu = await testGpu();
    const { model } = loadPrefillModel(gpu, dir, { ropeFreqPrecision: 'f32' });
    const r = rng(7);
    for (const T of [1, 11, 37]) {
      const ids = Array.from({ length: T }, () => Math.floor(r() * cfg.vocabSize));
      const want = referenceForward(cfg, mapWeights(ckpt.weights), ids);
      const out = await model.prefill(ids, { allLogits: true });
      const logitErr = maxAbsDiff(out.lastLogits, want.logits[T - 1]!);
      let latentErr = 0;
      for (let l = 0; l < cfg.numLayers; l++) {
        const got = await gpu.readF32(out.latent[l]!, 0, want.latent[l]!.length);
        latentErr = Math.max(latentErr, maxAbsDiff(got, want.latent[l]!));
      }
      out.release();
      t.log(`T=${T}: max |Δlogit| ${logitErr.toExponential(2)}, max |Δlatent| ${latentErr.toExponential(2)}`);
      t.true(logitErr < BOUND, `logits off by ${logitErr}`);
      t.true(latentErr < BOUND, `latent rows off by ${latentErr}`);
      // at 1e-5 a flipped argmax would need two logits within 2e-5 of each other: none are, at these seeds
      const argmaxWant = want.logits.map((row) => row.indexOf(Math.max(...row)));
      t.deepEqual(Array.from(out.argmax!), argmaxWant, 'argmax at every position');
    }
    model.dispose();
  });

  test(`prefill - ${preset}: MLPs in chunks of rows (a long prompt's) match the float64 reference`, async (t) => {
    const dir = tempDir(t);
    const ckpt = writeRandomCheckpoint(dir, { preset, seed: 5, overrides: { moe_intermediate_size: 32 } });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE_DIR, f), join(dir, f));
    const cfg = loadConfig(dir);
    const gpu = await testGpu();
    // chunks of at most 64 rows: 150 tokens run every MLP as three chunks of 50
    const chunked = loadPrefillModel(gpu, dir, { ropeFreqPrecision: 'f32', mlpChunkRows: 64 }).model;
    t.is(chunked.mlpChunkRows, 64);
    const r = rng(11);
    const T = 150;
    const ids = Array.from({ length: T }, () => Math.floor(r() * cfg.vocabSize));
    const want = referenceForward(cfg, mapWeights(ckpt.weights), ids);
    const got = await chunked.prefill(ids, { allLogits: true });
    const logitErr = maxAbsDiff(got.lastLogits, want.logits[T - 1]!);
    let latentErr = 0;
    for (let l = 0; l < cfg.numLayers; l++) {
      latentErr = Math.max(latentErr, maxAbsDiff(await gpu.readF32(got.latent[l]!, 0, want.latent[l]!.length), want.latent[l]!));
    }
    t.log(`T=${T} in chunks of at most 64: max |Δlogit| ${logitErr.toExponential(2)}, max |Δlatent| ${latentErr.toExponential(2)}`);
    t.true(logitErr < BOUND, `logits off by ${logitErr}`);
    t.true(latentErr < BOUND, `latent rows off by ${latentErr}`);
    t.deepEqual(Array.from(got.argmax!), want.logits.map((row) => row.indexOf(Math.max(...row))), 'argmax at every position');
    got.release();
    chunked.dispose();
  });
}
