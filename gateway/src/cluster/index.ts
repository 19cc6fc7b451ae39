// Public API of the cluster backend (NATS + BullMQ).
export { CLUSTER_ENV, clusterSettings, clusterSettingsFromEnv, type ClusterSettings } from './env.js';
export { DecodeRegistry, type DecodeNode, type DecodeRegistryOptions, type NodeEvent, type NodeListener } from './decode-registry.js';
export { capacityTokens, headroomOf, rankByHeadroom, type RankedNode } from './headroom.js';
export { AdmissionQueue, type AdmissionTicket, type WakeReason } from './admission-queue.js';
export { NatsBackend, type NatsBackendOptions, type NatsBackendSettings } from './nats-backend.js';
export { PrefillJobs, PREFILL_JOB_NAME, type PrefillJobSettings } from './prefill-jobs.js';
export { ClusterMetrics } from './metrics.js';
export { DecodeNodeError, PrefillEnqueueError, TokenStreamError } from './errors.js';
export { startClusterBackend, type ClusterBackend, type ClusterBackendOptions } from './cluster.js';
