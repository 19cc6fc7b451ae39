// Public API of the OpenAI-compatible HTTP layer.
export {
  BackendRejection, FinishedByGateway, type BackendReadiness, type GenerationBackend, type GenerationEvent, type GenerationRequest,
  type GenerationTrace,
} from './backend.js';
export { ServingMetrics, type RequestFinish } from './serving-metrics.js';
export { ApiError, type ErrorBody } from './api-error.js';
export { ApiKeySet, type Access } from './api-keys.js';
export { createGatewayApp, gatewayModel, type GatewayAppOptions } from './app.js';
export { startGateway, type RunningGateway, type StartGatewayOptions } from './server.js';
export { HTTP_ENV, httpSettings, httpSettingsFromEnv, type HttpSettings } from './env.js';
export { bodyLimits, DEFAULT_LIMITS } from './limits.js';
export { LOG_REDACT } from './log-redact.js';
export type { BodyLimits } from './read-json-body.js';
export type { GatewayModel } from './served-model.js';
export { StopMatcher } from './stop-matcher.js';
export type { ClusterSource, NodeTimings } from './cluster-source.js';
export { WEB_DIR } from './web-pages.js';
