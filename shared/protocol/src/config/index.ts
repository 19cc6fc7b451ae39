export { parseEnv, pickEnv, envDoc, env, ConfigError, EXIT_CONFIG, type EnvSchema, type EnvOf } from './env.js';
export { COMMON_ENV, DEFAULT_MODEL_DIR, LOG_LEVELS, type LogLevel } from './common-env.js';
export { failStart } from './fail-start.js';
export { NATS_AUTH_ENV, SECRET_ENV, natsAuthFromEnv, natsConnectOptions, logNatsErrors, describeNatsAuth, redactUrl, type NatsAuth, type NatsAuthEnv } from './nats-auth.js';
