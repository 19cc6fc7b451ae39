// @latentwire/decode-node: the decode node's engine (continuous batching over the paged latent KV cache),
// its configuration, and the NATS service around them.
export { DecodeNodeService, type DecodeNodeServiceOptions } from './service/decode-node-service.js';
export { SERVICE_ENV, serviceSettings, serviceSettingsFromEnv, type ServiceSettings } from './service/env.js';
export { DECODE_ENV, decodeSettings, decodeSettingsFrom, type DecodeSettings, type DecodeDeviceLimits } from './config.js';
export { DECODE_NODE_ENV, decodeNodeEnv, type DecodeNodeEnv } from './node-env.js';
export { CLI_ENV } from './cli/env.js';
export { loadDecodeStack, type DecodeStack } from './engine/load.js';
export { DecodeModel, DEFAULT_STEP_CACHE, FUSED_MERGE_MAX_SPLITS, type DecodeModelOptions, type DecodeStepInput } from './engine/decode-model.js';
export { DecodeEngine, type EngineRequest, type RequestEvents, type SamplingSettings, type Usage } from './engine/engine.js';
export { SchedulerRejection, type FinishReason, type RejectionReason } from './scheduler/index.js';
