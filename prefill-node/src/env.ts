// The prefill node's environment, composed from the common variables (COMMON_ENV), its own, and the GPU's
// and RoPE's (@latentwire/gpu); parsed once at start into a frozen object. A bad value fails start-up with
// a ConfigError naming the variable, and main.ts exits 2.
import { COMMON_ENV, env, MAX_PROMPT_TOKENS, natsAuthFromEnv, parseEnv, type LogLevel, type NatsAuth } from '@latentwire/protocol';
import { GPU_ENV, MODEL_ENV, gpuOptions, type GpuOptions } from '@latentwire/gpu';
import type { RopeFreqPrecision } from '@latentwire/model';
import { DEFAULT_KV_ACK_TIMEOUT_MS, DEFAULT_KV_SEND_WINDOW_BYTES } from './worker.js';

export const PREFILL_ENV = {
  ...COMMON_ENV,
  PREFILL_CONCURRENCY: env.int(2, 1, 64).describe("jobs a worker runs at once (one job's sends overlap the next one's compute)"),
  KV_SEND_WINDOW_BYTES: env.int(DEFAULT_KV_SEND_WINDOW_BYTES, 1, 2 ** 31).describe('unacknowledged KV bytes per decode node (flow control)'),
  KV_ACK_TIMEOUT_MS: env.int(DEFAULT_KV_ACK_TIMEOUT_MS, 1, 600_000).describe('wait for a kv-chunk / prefill-done acknowledgement before the attempt fails'),
  PREFILL_HEARTBEAT_MS: env.int(1000, 0, 600_000).describe('how often the worker announces itself and its running jobs on NATS, so a gateway re-queues the jobs of a crashed worker at once (0 = never)'),
  PREFILL_MAX_PROMPT_TOKENS: env.int(0, 0, MAX_PROMPT_TOKENS).describe("longest prompt this node takes (stated in its heartbeats: a gateway answers longer ones 400); 0 = the model's `max_position_embeddings`, or less where the device cannot prefill that long (found at start). A lower cap also shortens the start-up's compile (fewer prompt lengths) and bounds a prefill's activation memory"),
  PREFILL_METRICS_PORT: env.int(0, 0, 65535).describe('operations port: `GET /health` (alive), `/ready` (model loaded, every shader compiled, worker on the queue, on NATS), `/metrics`; 0 = off'),
};

/** Everything the prefill node process reads. */
export const PREFILL_NODE_ENV = { ...PREFILL_ENV, ...GPU_ENV, ...MODEL_ENV };

export interface PrefillSettings {
  readonly natsServers: readonly string[];
  readonly natsAuth: NatsAuth | undefined;
  readonly redisUrl: string;
  readonly modelDir: string;
  readonly prefix: string;
  readonly logLevel: LogLevel;
  readonly concurrency: number;
  readonly maxInFlightBytes: number;
  readonly ackTimeoutMs: number;
  readonly metricsPort: number;
  readonly heartbeatMs: number;
  /** PREFILL_MAX_PROMPT_TOKENS (0: no cap of its own). */
  readonly maxPromptTokens: number;
  readonly gpu: GpuOptions;
  readonly ropeFreqPrecision: RopeFreqPrecision;
}

export function prefillSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): PrefillSettings {
  const v = parseEnv(PREFILL_NODE_ENV, e);
  return Object.freeze({
    natsServers: Object.freeze([...v.NATS_URL]), natsAuth: natsAuthFromEnv(v), redisUrl: v.REDIS_URL, modelDir: v.MODEL_DIR, prefix: v.NATS_SUBJECT_PREFIX,
    logLevel: v.LOG_LEVEL, concurrency: v.PREFILL_CONCURRENCY, maxInFlightBytes: v.KV_SEND_WINDOW_BYTES,
    ackTimeoutMs: v.KV_ACK_TIMEOUT_MS, metricsPort: v.PREFILL_METRICS_PORT, heartbeatMs: v.PREFILL_HEARTBEAT_MS, maxPromptTokens: v.PREFILL_MAX_PROMPT_TOKENS, gpu: gpuOptions(v), ropeFreqPrecision: v.ROPE_FREQ_PRECISION,
  });
}

/**
 * The longest prompt the node takes: the operator's cap (PREFILL_MAX_PROMPT_TOKENS, 0 = none), and below the
 * shortest length the device cannot prefill (compileAll's limit); undefined when neither is under the model's context.
 */
export function promptTokenLimit(cap: number, maxPositionEmbeddings: number, deviceLimit: number | undefined): number | undefined {
  const limits = [cap > 0 && cap < maxPositionEmbeddings ? cap : Infinity, deviceLimit === undefined ? Infinity : deviceLimit - 1];
  const least = Math.min(...limits);
  return Number.isFinite(least) ? least : undefined;
}
