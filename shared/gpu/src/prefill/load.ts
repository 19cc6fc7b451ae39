import type { Gpu } from '../runtime/runtime.js';
import { DEFAULT_ROPE_FREQ_PRECISION, openModelFolder, type ModelFolder } from '@latentwire/model';
import { uploadCheckpoint } from '../weights/upload-checkpoint.js';
import { PrefillModel, type PrefillModelOptions } from './prefill-model.js';

/**
 * Opens a Hugging Face folder, uploads its weights and returns the prefill model with its folder.
 * `opts.ropeFreqPrecision` defaults to ROPE_FREQ_PRECISION's default; the model reports the value it used.
 */
export function loadPrefillModel(gpu: Gpu, dir: string, opts: Partial<PrefillModelOptions> = {}): { folder: ModelFolder; model: PrefillModel } {
  const folder = openModelFolder(dir);
  const weights = uploadCheckpoint(gpu, folder);
  return { folder, model: new PrefillModel(gpu, folder.config, weights, { ...opts, ropeFreqPrecision: opts.ropeFreqPrecision ?? DEFAULT_ROPE_FREQ_PRECISION }) };
}
