// The WebGPU runtime: device, pipelines, uniforms, profiling. Kernels, the model forward and weights are
// the subpaths ./kernels, ./forward (the per-layer builder both roles use), ./prefill and ./weights.
export * from './runtime/index.js';
export { GPU_ENV, MODEL_ENV, gpuOptions, gpuOptionsFromEnv, ropeFreqPrecisionFromEnv } from './runtime/gpu-env.js';
