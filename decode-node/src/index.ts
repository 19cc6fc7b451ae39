// @latentwire/decode-node: the decode node's engine (continuous batching over the paged latent KV cache),
// its configuration, and the NATS service around them.
export { DecodeNodeService, type DecodeNodeServiceOptions } from './service/decode-node-service.js';
export { SERVICE_ENV, serviceSettingsFromEnv, type ServiceSettings } from './service/env.js';
export { DECODE_ENV, decodeSettings, type DecodeSettings } from './config.js';
export { loadDecodeStack, type DecodeStack } from './engine/load.js';
export { DecodeEngine, type EngineRequest, type RequestEvents, type SamplingSettings, type Usage } from './engine/engine.js';
export { SchedulerRejection, type FinishReason, type RejectionReason } from './scheduler/index.js';
