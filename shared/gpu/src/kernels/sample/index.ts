export { sampleTokens, sampleTokensShader, sampleWorkgroupSize, type SampleTokensArgs, type SampleWorkgroupSize } from './sample.js';
export { sampleRowStats, sampleRowStatsBytes, sampleRowStatsShader, sampleStatsChunks, SAMPLE_STATS_CHUNK, type SampleRowStatsArgs } from './sample-row-stats.js';
export {
  packSamplingParams, validateSamplingParams, SAMPLING_PARAMS_WORDS, SAMPLING_PARAMS_BYTES, type SamplingParams,
} from './sampling-params.js';
export { samplingUniform, SAMPLING_UNIFORM_WGSL } from './sampling-uniform.js';
export {
  countsRow, hasLogitWork, needsCounts, packLogitBias, packLogitParams, packLogitRows, penaltiesOf, unpackLogprobs, validateLogitParams, LOGIT_PARAMS_BYTES, LOGIT_PARAMS_WORDS,
  LOGPROBS_WORDS, MAX_TOP_LOGPROBS, NEUTRAL_LOGIT_PARAMS, NO_COUNTS, NO_LOGPROBS, PROMPT_BIT, type LogitParams, type LogitSettings, type TokenLogprobs,
} from './logit-params.js';
export { logitAdjust, logitAdjustShader, type LogitAdjustArgs } from './logit-adjust.js';
export { countTokens, countTokensShader, type CountTokensArgs } from './count-tokens.js';
export { tokenLogprobs, tokenLogprobsShader, type TokenLogprobsArgs } from './token-logprobs.js';
export { maskWords, tokenMask, tokenMaskShader, NO_MASK, type TokenMaskArgs } from './token-mask.js';
export { sampleSearches, sampleSpread, sampleSpreadScratchBytes, sampleSpreadWorkgroups, type SampleSearches, type SampleSpreadArgs } from './sample-spread.js';
export { sampleSearchShader } from './sample-search.js';
export { sampleDrawShader } from './sample-draw.js';
