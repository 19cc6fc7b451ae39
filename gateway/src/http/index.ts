// Public API of the OpenAI-compatible HTTP layer.
export { BackendRejection, type GenerationBackend, type GenerationEvent, type GenerationRequest } from './backend.js';
export { ApiError, type ErrorBody } from './api-error.js';
export { createGatewayApp, type GatewayAppOptions } from './app.js';
export { startGateway, type RunningGateway, type StartGatewayOptions } from './server.js';
export { HTTP_ENV, httpSettings, httpSettingsFromEnv, type HttpSettings } from './env.js';
export type { GatewayModel } from './served-model.js';
export { StopMatcher } from './stop-matcher.js';
