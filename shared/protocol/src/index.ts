// The contract between gateway, prefill and decode nodes: wire messages and subjects, the latent KV page
// layout, and environment parsing. Depends on zod, msgpackr and metrics only: no GPU, no model files.
export * from './wire/index.js';
export * from './kv/kv-dtype.js';
export * from './kv/latent-layout.js';
export * from './config/index.js';
export * from './kv/page-pool.js';
export { natsLink, serveOps, type OpsServerOptions, type Readiness } from './ops/ops-server.js';
export { registerKernelMetrics, type KernelTimeSource } from './ops/kernel-metrics.js';
