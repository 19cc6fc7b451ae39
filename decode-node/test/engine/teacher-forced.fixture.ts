// The tiny checkpoint decoded teacher-forced against transformers' numbers (reference.json): each case's prompt
// prefilled and written to the cache, then all cases stepped together, each step fed the reference's previous
// token, so one early flip cannot compound. Shared by the fixture tests of the f32 and tensor-core kernels.
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { FIXTURE_DIR, maxAbsDiff, readFixtureJson } from '@latentwire/testing';
import type { Gpu } from '@latentwire/gpu';
import type { KvDtype } from '@latentwire/protocol';
import { DecodeModel, type DecodeModelOptions } from '../../src/engine/decode-model.js';

interface Case { readonly input_ids: number[]; readonly greedy_ids: number[]; readonly step_logits: number[][] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;
const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0, counter: 0 };

export interface TeacherForced {
  /** Max |Δlogit| over the prefills' last logits and every step's, and the mean over the steps'. */
  readonly max: number;
  readonly mean: number;
  /** Greedy choices equal to transformers', of `total` (cases × steps after the first token). */
  readonly agree: number;
  readonly total: number;
  /** The prefill's greedy first token of each case, and the reference's. */
  readonly firstTokens: readonly number[];
  readonly wantFirstTokens: readonly number[];
}

export async function teacherForcedDecode(
  gpu: Gpu, kvDtype: KvDtype, opts: Pick<DecodeModelOptions, 'attentionEngine'> = {},
): Promise<TeacherForced> {
  // the weights as the decode node loads them: the shared experts run with the routed ones (moePrograms)
  const { folder, model: prefill } = loadPrefillModel(gpu, FIXTURE_DIR, { routeSharedExperts: true });
  const cfg = folder.config;
  const dec = await DecodeModel.create(gpu, cfg, prefill.weights, {
    maxBatch: cases.length, maxContext: 128, pageSize: 16, kvDtype, numPages: 8 * cases.length,
    ropeFreqPrecision: prefill.ropeFreqPrecision, ...opts,
  });
  try {
    const tables = cases.map((_, b) => Array.from({ length: 8 }, (_, i) => 8 * b + i));
    const V = cfg.vocabSize;
    let max = 0, sum = 0, count = 0, agree = 0;
    const firstTokens: number[] = [];
    for (const [b, c] of cases.entries()) {
      const out = await prefill.prefill(c.input_ids);
      await dec.writePrompt(out.latent, c.input_ids.length, tables[b]!);
      out.release();
      max = Math.max(max, maxAbsDiff(out.lastLogits, c.step_logits[0]!));
      firstTokens.push(out.lastLogits.indexOf(Math.max(...out.lastLogits)));
    }
    const steps = cases[0]!.greedy_ids.length;
    for (let s = 1; s < steps; s++) {
      const got = await dec.step({
        tokens: cases.map((c) => c.greedy_ids[s - 1]!),
        positions: cases.map((c) => c.input_ids.length + s - 1),
        pageTables: tables, sampling: cases.map(() => GREEDY), returnLogits: true,
      });
      for (const [b, c] of cases.entries()) {
        const row = got.logits!.subarray(b * V, (b + 1) * V);
        const want = c.step_logits[s]!;
        max = Math.max(max, maxAbsDiff(row, want));
        for (let i = 0; i < V; i++) { sum += Math.abs(row[i]! - want[i]!); count++; }
        if (got.tokens[b] === c.greedy_ids[s]) agree++;
      }
    }
    return { max, mean: sum / count, agree, total: cases.length * (steps - 1), firstTokens, wantFirstTokens: cases.map((c) => c.greedy_ids[0]!) };
  } finally {
    dec.release();
    prefill.dispose();
  }
}
