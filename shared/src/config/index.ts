export { parseEnv, env, ConfigError, type EnvSchema, type EnvOf } from './env.js';
export { GPU_ENV, MODEL_ENV, gpuOptionsFromEnv, ropeFreqPrecisionFromEnv } from './gpu-env.js';
