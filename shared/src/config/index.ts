export { parseEnv, env, ConfigError, type EnvSchema, type EnvOf } from './env.js';
export { GPU_ENV, gpuOptionsFromEnv } from './gpu-env.js';
