// Public API of the gateway.
export * from './http/index.js';
export * from './cluster/index.js';
export { metricsRoute } from './metrics-route.js';
export { GATEWAY_ENV, gatewaySettingsFromEnv, type GatewaySettings } from './env.js';
