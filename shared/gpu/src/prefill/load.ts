import type { Gpu } from '../runtime/runtime.js';
import { openModelFolder, type ModelFolder } from '@latentwire/model';
import { uploadCheckpoint } from '../weights/upload-checkpoint.js';
import { PrefillModel, type PrefillModelOptions } from './prefill-model.js';

/** Opens a Hugging Face folder, uploads its weights and returns the prefill model with its folder. */
export function loadPrefillModel(gpu: Gpu, dir: string, opts: PrefillModelOptions = {}): { folder: ModelFolder; model: PrefillModel } {
  const folder = openModelFolder(dir);
  const weights = uploadCheckpoint(gpu, folder);
  // by default match transformers, which rounds inv_freq to the dtype a checkpoint is loaded in
  const ropeFreqPrecision = opts.ropeFreqPrecision ?? (weights.embed.dtype === 'bf16' ? 'bf16' : 'f32');
  return { folder, model: new PrefillModel(gpu, folder.config, weights, { ...opts, ropeFreqPrecision }) };
}
