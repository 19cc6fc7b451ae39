// Public API of the gateway.
export * from './http/index.js';
export * from './cluster/index.js';
export { metricsRoute } from './metrics-route.js';
export { GATEWAY_ENV, gatewaySettingsFromEnv, type GatewaySettings } from './env.js';
export { ClusterView, prefillWorkers, type ClusterSnapshot, type ClusterViewOptions, type DecodeNodeView, type NodeSample, type PrefillWorkerView } from './ops/cluster-view.js';
export { percentiles, Ring, type Observation, type Percentiles } from './ops/ring.js';
