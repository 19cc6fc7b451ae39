export { PrefillModel, type PrefillOptions, type PrefillOutput, type PrefillModelOptions } from './prefill-model.js';
export type { RopeFreqPrecision } from '../model/rope-frequencies.js';
export { loadPrefillModel } from './load.js';
