export { PrefillModel, logitRowsPerChunk, type PrefillOptions, type PrefillOutput, type PrefillModelOptions, type PrefillCompileOptions, type PrefillCompiled, type PrefillWarmUpRun } from './prefill-model.js';
export type { RopeFreqPrecision } from '@latentwire/model';
export { loadPrefillModel } from './load.js';
export { LatentPageStager, pageRows } from './latent-pages.js';
