export { PrefillModel, type PrefillOptions, type PrefillOutput, type PrefillModelOptions } from './prefill-model.js';
export type { RopeFreqPrecision } from '@latentwire/model';
export { loadPrefillModel } from './load.js';
export { LatentPageStager, pageRows } from './latent-pages.js';
