// The prefill node's environment, parsed once at start into a frozen object; a bad value fails start-up
// with an error naming the variable. GPU_ENV and MODEL_ENV (@latentwire/gpu) apply too.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, env, parseEnv } from '@latentwire/protocol';
import { gpuOptionsFromEnv, ropeFreqPrecisionFromEnv } from '@latentwire/gpu';
import type { GpuOptions } from '@latentwire/gpu';
import { wireSubjects } from '@latentwire/protocol';
import { DEFAULT_KV_ACK_TIMEOUT_MS, DEFAULT_KV_SEND_WINDOW_BYTES } from './worker.js';

/** The repo's tiny test model (this file is prefill-node/dist/src/env.js once built). */
const DEFAULT_MODEL_DIR = resolve(fileURLToPath(import.meta.url), '../../../../models/tiny-deepseek-v2');

export const PREFILL_ENV = {
  /** NATS server(s), comma-separated. */
  NATS_URL: env.str('nats://127.0.0.1:4222'),
  /** Redis holding the BullMQ prefill queue. */
  REDIS_URL: env.str('redis://127.0.0.1:6379'),
  /** Hugging Face model folder; its fingerprint must match the jobs'. */
  MODEL_DIR: env.str(DEFAULT_MODEL_DIR),
  /** Prefix of every subject and of the queue name; one per cluster. */
  NATS_SUBJECT_PREFIX: env.str('lw'),
  /** Jobs processed at once (GPU work is serialized anyway; this overlaps one job's sends with the next's compute). */
  PREFILL_CONCURRENCY: env.int(2, 1, 64),
  /** Unacknowledged kv-chunk bytes per decode node (shared by all jobs sending to it). */
  KV_SEND_WINDOW_BYTES: env.int(DEFAULT_KV_SEND_WINDOW_BYTES, 1, 2 ** 31),
  /** How long a kv-chunk or prefill-done waits for its ack before the attempt fails and is retried (ms). */
  KV_ACK_TIMEOUT_MS: env.int(DEFAULT_KV_ACK_TIMEOUT_MS, 1, 600_000),
  /** Port for GET /metrics (Prometheus); 0 = no metrics server. */
  PREFILL_METRICS_PORT: env.int(0, 0, 65535),
};

export interface PrefillSettings {
  readonly natsUrl: string;
  readonly redisUrl: string;
  readonly modelDir: string;
  readonly prefix: string;
  readonly concurrency: number;
  readonly maxInFlightBytes: number;
  readonly ackTimeoutMs: number;
  readonly metricsPort: number;
  readonly gpu: GpuOptions;
  readonly ropeFreqPrecision: 'f32' | undefined;
}

export function prefillSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): PrefillSettings {
  const v = parseEnv(PREFILL_ENV, e);
  const problems: string[] = [];
  const urls = (name: string, value: string, protocols: readonly string[]) => {
    for (const part of value.split(',').map((s) => s.trim())) {
      let ok = false;
      try {
        ok = protocols.includes(new URL(part).protocol);
      } catch { /* not a URL */ }
      if (!ok) problems.push(`${name}=${JSON.stringify(value)}: expected ${protocols.map((p) => `${p}//host:port`).join(' or ')}`);
    }
  };
  urls('NATS_URL', v.NATS_URL, ['nats:', 'tls:']);
  urls('REDIS_URL', v.REDIS_URL, ['redis:', 'rediss:']);
  try {
    wireSubjects(v.NATS_SUBJECT_PREFIX);
  } catch (err) {
    problems.push(`NATS_SUBJECT_PREFIX=${JSON.stringify(v.NATS_SUBJECT_PREFIX)}: ${(err as Error).message}`);
  }
  if (problems.length > 0) throw new ConfigError(`invalid environment:\n  ${problems.join('\n  ')}`);
  return Object.freeze({
    natsUrl: v.NATS_URL, redisUrl: v.REDIS_URL, modelDir: resolve(v.MODEL_DIR), prefix: v.NATS_SUBJECT_PREFIX,
    concurrency: v.PREFILL_CONCURRENCY, maxInFlightBytes: v.KV_SEND_WINDOW_BYTES, ackTimeoutMs: v.KV_ACK_TIMEOUT_MS,
    metricsPort: v.PREFILL_METRICS_PORT, gpu: gpuOptionsFromEnv(e), ropeFreqPrecision: ropeFreqPrecisionFromEnv(e),
  });
}
