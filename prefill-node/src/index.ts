// The prefill node: a BullMQ worker that prefills DeepSeek MLA prompts on WebGPU and streams each layer's
// latent KV to the reserving decode node over NATS (request/reply, flow-controlled per destination).
export { PrefillWorkerService, DEFAULT_KV_ACK_TIMEOUT_MS, DEFAULT_KV_SEND_WINDOW_BYTES, type PrefillWorkerOptions } from './worker.js';
export { processPrefillJob, checkJob, type JobContext, type PrefillJobResult } from './process-job.js';
export { ChunkBuffers, KvSender, sendPrefillFailed, type KvDestination, type KvSendContext } from './kv-sender.js';
export { SendWindows, type Release } from './send-window.js';
export { prefillConnectOptions } from './nats-options.js';
export { Cancellations, type CancellationsOptions, type TrackedRequest } from './cancellations.js';
export { PrefillMetrics, JOB_OUTCOMES, type JobOutcome } from './metrics.js';
export { PREFILL_ENV, PREFILL_NODE_ENV, prefillSettingsFromEnv, type PrefillSettings } from './env.js';
export { PrefillNodeError, RequestGoneError, PrefillRefusedError, KvSendError, type GoneReason } from './errors.js';
