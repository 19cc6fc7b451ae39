// Opens a model folder and builds the decode stack on it: weights (shared with a local prefill model, which
// the CLI and the local path use), the absorbed weights, the paged cache, every decode pipeline compiled and
// dispatched once, and the engine.
import type { Gpu } from '@latentwire/gpu';
import type { OnLoadProgress } from '@latentwire/gpu/weights';
import { grammarVocabulary, type ModelFolder } from '@latentwire/model';
import { loadPrefillModel, type PrefillModel, type RopeFreqPrecision } from '@latentwire/gpu/prefill';
import { DecodeModel } from './decode-model.js';
import { DecodeEngine } from './engine.js';
import type { DecodeSettings } from '../config.js';

export interface DecodeStack {
  readonly folder: ModelFolder;
  readonly prefill: PrefillModel;
  readonly model: DecodeModel;
  readonly engine: DecodeEngine;
  /** The pipelines compiled ahead of traffic (DecodeModel.compileAll): how many and how long it took. */
  readonly compiled: { readonly shaders: number; readonly ms: number };
  /** The steps run so that every compiled pipeline was dispatched once (DecodeModel.warmUp), and their time. */
  readonly warmed: { readonly steps: number; readonly ms: number };
  release(): void;
}

export async function loadDecodeStack(
  gpu: Gpu, dir: string, settings: (cfg: ModelFolder['config']) => DecodeSettings,
  opts: { ropeFreqPrecision?: RopeFreqPrecision; onLoadProgress?: OnLoadProgress } = {},
): Promise<DecodeStack> {
  // the decode model runs the shared experts with the routed ones past the GEMV batch sizes (moePrograms)
  const { folder, model: prefill } = loadPrefillModel(gpu, dir, { ...opts, routeSharedExperts: true });
  const s = settings(folder.config);
  const model = await DecodeModel.create(gpu, folder.config, prefill.weights, {
    maxBatch: s.maxBatch, maxContext: s.maxContext, pageSize: s.pageSize, kvDtype: s.kvDtype, numPages: s.numPages,
    headGroup: s.headGroup, attentionEngine: s.attentionEngine, kvSplits: s.kvSplits, ropeFreqPrecision: prefill.ropeFreqPrecision,
  });
  const compiled = await model.compileAll(); // before anyone can send work: no request waits for a compile
  const warmed = await model.warmUp(); // nor for a driver finishing one at the first dispatch (before any page is held)
  const engine = new DecodeEngine(model, prefill, { maxWaiting: s.maxWaiting, leaseMs: s.leaseMs, grammarVocabulary: grammarVocabulary(folder) });
  return {
    folder, prefill, model, engine, compiled, warmed,
    release: () => {
      model.release();
      prefill.dispose();
    },
  };
}
