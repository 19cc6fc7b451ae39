// The cluster side's environment variables (NATS, Redis and the subject prefix from COMMON_ENV; admission and
// timeouts), parsed once at start.
import { COMMON_ENV, env, parseEnv, pickEnv, type EnvOf } from '@latentwire/protocol';

export const CLUSTER_ENV = {
  ...pickEnv(COMMON_ENV, 'NATS_URL', 'REDIS_URL', 'NATS_SUBJECT_PREFIX'),
  HEARTBEAT_TIMEOUT_MS: env.int(3000, 50).describe('a decode node silent this long leaves the pool'),
  RESERVE_TIMEOUT_MS: env.int(2000, 10).describe('how long one node may take to answer a reservation'),
  ADMISSION_QUEUE_MAX: env.int(256).describe('requests waiting for pages; one more gets 429 at once'),
  ADMISSION_WAIT_MS: env.int(5000).describe('longest wait for pages before 429 (`Retry-After`)'),
  REQUEST_IDLE_TIMEOUT_MS: env.int(60_000, 10).describe('a request with no tokens for this long fails and is cancelled everywhere'),
  PREFILL_ATTEMPTS: env.int(3, 1, 100).describe('BullMQ attempts of a prefill job'),
  PREFILL_BACKOFF_MS: env.int(250).describe("a failed prefill job's first retry delay, doubled each time"),
};

export interface ClusterSettings {
  readonly natsServers: readonly string[];
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
  return clusterSettings(parseEnv(CLUSTER_ENV, e));
}

export function clusterSettings(v: EnvOf<typeof CLUSTER_ENV>): ClusterSettings {
  return Object.freeze({
    natsServers: Object.freeze([...v.NATS_URL]),
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
