import type { Gpu } from '../runtime/runtime.js';
import { DEFAULT_ROPE_FREQ_PRECISION, openModelFolder, type ModelFolder } from '@latentwire/model';
import type { OnLoadProgress } from '../weights/load-progress.js';
import { uploadCheckpoint } from '../weights/upload-checkpoint.js';
import type { BuildOptions } from '../weights/build-weights.js';
import { PrefillModel, type PrefillModelOptions } from './prefill-model.js';

/**
 * Opens a Hugging Face folder, uploads its weights and returns the prefill model with its folder.
 * `opts.ropeFreqPrecision` defaults to ROPE_FREQ_PRECISION's default; the model reports the value it used.
 * `opts.onLoadProgress` hears the weights' upload (loadProgressReporter shows it); `opts.routeSharedExperts` gives
 * the weights the shared experts' copy a decode model runs with the routed experts (BuildOptions).
 */
export function loadPrefillModel(
  gpu: Gpu, dir: string, opts: Partial<PrefillModelOptions> & BuildOptions & { readonly onLoadProgress?: OnLoadProgress | undefined } = {},
): { folder: ModelFolder; model: PrefillModel } {
  const { onLoadProgress, routeSharedExperts, ...modelOpts } = opts;
  const folder = openModelFolder(dir);
  const weights = uploadCheckpoint(gpu, folder, onLoadProgress, { routeSharedExperts });
  return { folder, model: new PrefillModel(gpu, folder.config, weights, { ...modelOpts, ropeFreqPrecision: modelOpts.ropeFreqPrecision ?? DEFAULT_ROPE_FREQ_PRECISION }) };
}
