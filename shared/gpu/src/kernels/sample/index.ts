export { sampleTokens, sampleTokensShader, type SampleTokensArgs } from './sample.js';
export {
  packSamplingParams, validateSamplingParams, SAMPLING_PARAMS_WORDS, SAMPLING_PARAMS_BYTES, type SamplingParams,
} from './sampling-params.js';
export { samplingUniform, SAMPLING_UNIFORM_WGSL } from './sampling-uniform.js';
