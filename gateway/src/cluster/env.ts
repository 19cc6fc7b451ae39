// The cluster side's environment variables (NATS, Redis, admission, timeouts), parsed once at start.
import { ConfigError, env, parseEnv } from '@latentwire/protocol';
import { wireSubjects } from '@latentwire/protocol';
import { z } from 'zod';

export const CLUSTER_ENV = {
  NATS_URL: env.str('nats://127.0.0.1:4222'),
  /** BullMQ's Redis, where prefill jobs are queued. */
  REDIS_URL: z.string().regex(/^rediss?:\/\/./, 'expected redis://… or rediss://…').default('redis://127.0.0.1:6379'),
  /** First token of every subject and of the prefill queue's name; every service of a cluster must agree. */
  NATS_SUBJECT_PREFIX: env.str('lw'),
  /** A decode node silent this long (ms) is dropped from routing. */
  HEARTBEAT_TIMEOUT_MS: env.int(3000, 50),
  /** How long (ms) one decode node may take to answer a reserve request. */
  RESERVE_TIMEOUT_MS: env.int(2000, 10),
  /** Requests waiting for KV pages at most; one more is refused at once with a 429. */
  ADMISSION_QUEUE_MAX: env.int(256),
  /** How long (ms) a request waits for KV pages before a 429. */
  ADMISSION_WAIT_MS: env.int(5000),
  /** A request that receives no tokens message for this long (ms) fails and is cancelled everywhere. */
  REQUEST_IDLE_TIMEOUT_MS: env.int(60_000, 10),
  /** Tries of a prefill job (BullMQ attempts). */
  PREFILL_ATTEMPTS: env.int(3, 1, 100),
  /** First retry delay of a failed prefill job (ms), doubled each time (BullMQ exponential backoff). */
  PREFILL_BACKOFF_MS: env.int(250),
};

export interface ClusterSettings {
  readonly natsUrl: string;
  readonly redisUrl: string;
  readonly subjectPrefix: string;
  readonly heartbeatTimeoutMs: number;
  readonly reserveTimeoutMs: number;
  readonly admissionQueueMax: number;
  readonly admissionWaitMs: number;
  readonly requestIdleTimeoutMs: number;
  readonly prefillAttempts: number;
  readonly prefillBackoffMs: number;
}

export function clusterSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): ClusterSettings {
  const v = parseEnv(CLUSTER_ENV, e);
  try {
    wireSubjects(v.NATS_SUBJECT_PREFIX);
  } catch (err) {
    throw new ConfigError(`invalid environment:\n  NATS_SUBJECT_PREFIX=${JSON.stringify(v.NATS_SUBJECT_PREFIX)}: ${(err as Error).message}`, { cause: err });
  }
  return Object.freeze({
    natsUrl: v.NATS_URL,
    redisUrl: v.REDIS_URL,
    subjectPrefix: v.NATS_SUBJECT_PREFIX,
    heartbeatTimeoutMs: v.HEARTBEAT_TIMEOUT_MS,
    reserveTimeoutMs: v.RESERVE_TIMEOUT_MS,
    admissionQueueMax: v.ADMISSION_QUEUE_MAX,
    admissionWaitMs: v.ADMISSION_WAIT_MS,
    requestIdleTimeoutMs: v.REQUEST_IDLE_TIMEOUT_MS,
    prefillAttempts: v.PREFILL_ATTEMPTS,
    prefillBackoffMs: v.PREFILL_BACKOFF_MS,
  });
}
