// Weight-absorbed decode (grouped kernel over the paged cache) against the model core's naive-order prefill
// on the same model: a decode step for token t at position P must give the logits that prefill(prompt + [t])
// gives at its last position. Random tiny V2 (q_lora, YaRN) and V3 (noaux_tc) checkpoints, f32 cache,
// page sizes {1, 16, 64}, head groups that do and do not divide the head count, KV splits {1, several},
// scattered page ids, pools split over several buffers, and one batch mixing contexts of 1 to several pages.
import test from 'ava';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { pagesFor } from '@latentwire/protocol';
import { FIXTURE_DIR, maxAbsDiff, rng, tempDir, writeRandomCheckpoint } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import { DecodeModel } from '../../src/engine/decode-model.js';

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0, counter: 0 };
const PROMPTS = [1, 3, 16, 33, 70];

interface Combo { readonly pageSize: number; readonly headGroup: number; readonly kvSplits: number; readonly poolBytes?: number; readonly fusedMergeMaxSplits?: number }

for (const [preset, combos] of [
  ['v2-qlora-yarn-grouped', [
    { pageSize: 1, headGroup: 1, kvSplits: 1 },
    { pageSize: 16, headGroup: 2, kvSplits: 3 }, // 2 does not divide 3 heads
    { pageSize: 64, headGroup: 3, kvSplits: 2 },
    { pageSize: 16, headGroup: 3, kvSplits: 1, poolBytes: 20 * 16 * 192 }, // pool split over 4 buffers of ≤ 20 pages
  ]],
  ['v3-noaux', [
    { pageSize: 1, headGroup: 5, kvSplits: 4 },
    { pageSize: 16, headGroup: 4, kvSplits: 1 }, // 4 does not divide 5 heads
    { pageSize: 64, headGroup: 2, kvSplits: 5 },
    { pageSize: 16, headGroup: 5, kvSplits: 9, fusedMergeMaxSplits: 8 }, // more splits than W_UV merges: the merge dispatch
  ]],
] as const) {
  test(`absorbed decode - ${preset}: a mixed-length batch equals naive prefill within 1e-5 (f32 cache)`, async (t) => {
    const dir = tempDir(t);
    writeRandomCheckpoint(dir, { preset, seed: 5, overrides: { moe_intermediate_size: 32 } });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE_DIR, f), join(dir, f));
    const gpu = await testGpu();
    const { folder, model: prefill } = loadPrefillModel(gpu, dir, { ropeFreqPrecision: 'f32' });
    const cfg = folder.config;
    const r = rng(11);
    const prompts = PROMPTS.map((n) => Array.from({ length: n }, () => Math.floor(r() * cfg.vocabSize)));
    const next = prompts.map(() => Math.floor(r() * cfg.vocabSize));
    // naive reference: the model core over prompt + [t]
    const want: Float32Array[] = [];
    for (const [b, p] of prompts.entries()) {
      const out = await prefill.prefill([...p, next[b]!]);
      out.release();
      want.push(out.lastLogits);
    }
    for (const combo of combos as readonly Combo[]) {
      const numPages = 64;
      const dec = await DecodeModel.create(gpu, cfg, prefill.weights, {
        maxBatch: 8, maxContext: 128, pageSize: combo.pageSize, kvDtype: 'f32', numPages: combo.pageSize === 1 ? 200 : numPages,
        headGroup: combo.headGroup, kvSplits: combo.kvSplits, ropeFreqPrecision: 'f32', maxPoolBindingBytes: combo.poolBytes,
        fusedMergeMaxSplits: combo.fusedMergeMaxSplits,
      });
      if (combo.poolBytes) t.true(dec.cache.pools[0]!.length > 1, 'the pool is split');
      // scattered, shuffled page ids
      const free = Array.from({ length: dec.cache.numPages }, (_, i) => i);
      for (let i = free.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [free[i], free[j]] = [free[j]!, free[i]!]; }
      const tables = prompts.map((p) => free.splice(0, pagesFor(combo, p.length + 1)));
      for (const [b, p] of prompts.entries()) {
        const out = await prefill.prefill(p);
        await dec.writePrompt(out.latent, p.length, tables[b]!);
        out.release();
      }
      const got = await dec.step({
        tokens: next, positions: prompts.map((p) => p.length), pageTables: tables, sampling: prompts.map(() => GREEDY), returnLogits: true,
      });
      const V = cfg.vocabSize;
      const errs = prompts.map((_, b) => maxAbsDiff(got.logits!.subarray(b * V, (b + 1) * V), want[b]!));
      t.log(`${JSON.stringify(combo)}: max |Δlogit| per sequence ${errs.map((e) => e.toExponential(1)).join(' ')}`);
      // measured max 1.7e-6 (V2) and 2.2e-6 (V3) over every combination; bound ≈ 5× the worst
      for (const [b, e] of errs.entries()) t.true(e < 1e-5, `sequence ${b} (context ${prompts[b]!.length + 1}) off by ${e}`);
      dec.release();
    }
    prefill.dispose();
  });
}
