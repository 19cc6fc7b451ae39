// The cluster side's environment variables (NATS, Redis and the subject prefix from COMMON_ENV; admission and
// timeouts), parsed once at start.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { COMMON_ENV, env, ID_MAX_LENGTH, MAX_RESUME_TOKENS, ID_PATTERN, NATS_AUTH_ENV, natsAuthFromEnv, parseEnv, pickEnv, type EnvOf, type NatsAuth } from '@latentwire/protocol';

/** gw-<hostname>-<pid>-<random>: a restarted gateway is a new gateway to the decode nodes. */
function defaultGatewayId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_:-]/g, '-').slice(0, 64) || 'host';
  return `gw-${host}-${process.pid}-${randomUUID().slice(0, 8)}`;
}

/**
 * A replay costs a decode step per token sent (~7 ms a step on the H200 at batch 1, tens of ms on lavapipe):
 * 1024 pauses a stream for seconds at most, about as long as the lost node took to generate them.
 */
export const DEFAULT_RESUME_REPLAY_MAX_TOKENS = 1024;

export const CLUSTER_ENV = {
  ...pickEnv(COMMON_ENV, 'NATS_URL', 'REDIS_URL', 'NATS_SUBJECT_PREFIX'),
  ...NATS_AUTH_ENV,
  HEARTBEAT_TIMEOUT_MS: env.int(3000, 50).describe('a decode node silent this long leaves the pool'),
  RESERVE_TIMEOUT_MS: env.int(2000, 10).describe('how long one node may take to answer a reservation'),
  ADMISSION_QUEUE_MAX: env.int(256).describe('requests waiting for pages; one more gets 429 at once'),
  ADMISSION_WAIT_MS: env.int(5000).describe('longest wait for pages before 429 (`Retry-After`)'),
  REQUEST_IDLE_TIMEOUT_MS: env.int(60_000, 10).describe('a request with no tokens for this long fails and is cancelled everywhere'),
  PREFILL_ATTEMPTS: env.int(3, 1, 100).describe('BullMQ attempts of a prefill job'),
  PREFILL_BACKOFF_MS: env.int(250).describe("a failed prefill job's first retry delay, doubled each time"),
  PREFILL_QUEUE_MAX_WAIT_MS: env.int(30_000).describe('a request whose prompt would wait longer than this in the prefill backlog (queued prompt tokens ÷ measured prefill throughput) gets 429 (`Retry-After`); 0 = no limit'),
  GATEWAY_ID: env
    .mapped<string | undefined>(undefined, (id) => {
      if (id.length > ID_MAX_LENGTH || !ID_PATTERN.test(id)) throw new RangeError(id);
      return id;
    }, `expected 1-${ID_MAX_LENGTH} of [A-Za-z0-9_.:-], no empty dot-separated part`)
    .meta({ description: "this gateway's id in its presence heartbeats and reservations (decode nodes cancel the requests of a gateway gone silent)", shown: 'gw-<host>-<pid>-<random>' }),
  GATEWAY_HEARTBEAT_MS: env.int(1000, 10, 600_000).describe("how often the gateway announces itself to the decode nodes (keep well under their GATEWAY_SILENCE_MS)"),
  NODE_PROBE_TIMEOUT_MS: env.int(1000, 10, 60_000).describe('a decode node whose heartbeats stopped is pinged directly; no pong within this and it leaves the pool'),
  PREFILL_SILENCE_MS: env.int(10_000, 0, 600_000).describe("a prefill worker whose heartbeats stop this long is lost: the requests whose jobs it ran are re-queued at once (each at most `PREFILL_RESUMES` times); 0 = wait for BullMQ's lock"),
  PREFILL_RESUMES: env.int(1, 0, 10).describe('times a request goes on elsewhere (new wire id): with no token yet after its prefill worker was lost or its decode node began draining, or from its sent tokens after its decode node was lost'),
  RESUME_REPLAY_MAX_TOKENS: env.int(DEFAULT_RESUME_REPLAY_MAX_TOKENS, 0, MAX_RESUME_TOKENS).describe("a request resumed after its decode node was lost with at most this many tokens sent is replayed: the new node feeds them through decode steps (one step each, in its batch), so the stream continues token for token on any cache dtype; past it they are prefilled again with the prompt (faster, but on an FP8 or bf16 cache the continuation may differ); 0 = always prefill again"),
  CANCEL_ACK_TIMEOUT_MS: env.int(500, 10, 60_000).describe('a cancel to a decode node is resent when not acknowledged within this'),
  CANCEL_ATTEMPTS: env.int(5, 1, 100).describe('cancels sent to a decode node before giving up (its lease or gateway-silence check frees the pages then)'),
};

export interface ClusterSettings {
  readonly natsServers: readonly string[];
  /** NATS credentials and TLS (natsConnectOptions); absent = none. */
  readonly natsAuth?: NatsAuth;
  readonly redisUrl: string;
  readonly subjectPrefix: string;
  readonly heartbeatTimeoutMs: number;
  readonly reserveTimeoutMs: number;
  readonly admissionQueueMax: number;
  readonly admissionWaitMs: number;
  readonly requestIdleTimeoutMs: number;
  readonly prefillAttempts: number;
  readonly prefillBackoffMs: number;
  /** Reliability knobs; each has the env default when absent. */
  readonly prefillQueueMaxWaitMs?: number;
  readonly gatewayId?: string;
  readonly gatewayHeartbeatMs?: number;
  readonly nodeProbeTimeoutMs?: number;
  readonly cancelAckTimeoutMs?: number;
  readonly cancelAttempts?: number;
  readonly prefillSilenceMs?: number;
  readonly prefillResumes?: number;
  readonly resumeReplayMaxTokens?: number;
}

export function clusterSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): ClusterSettings {
  return clusterSettings(parseEnv(CLUSTER_ENV, e));
}

/** `{ natsAuth }` when credentials or TLS are set, else nothing (the settings then hold no natsAuth key). */
function natsAuthOf(v: EnvOf<typeof CLUSTER_ENV>): { natsAuth?: NatsAuth } {
  const natsAuth = natsAuthFromEnv(v);
  return natsAuth ? { natsAuth } : {};
}

export function clusterSettings(v: EnvOf<typeof CLUSTER_ENV>): ClusterSettings {
  return Object.freeze({
    natsServers: Object.freeze([...v.NATS_URL]),
    ...natsAuthOf(v),
    redisUrl: v.REDIS_URL,
    subjectPrefix: v.NATS_SUBJECT_PREFIX,
    heartbeatTimeoutMs: v.HEARTBEAT_TIMEOUT_MS,
    reserveTimeoutMs: v.RESERVE_TIMEOUT_MS,
    admissionQueueMax: v.ADMISSION_QUEUE_MAX,
    admissionWaitMs: v.ADMISSION_WAIT_MS,
    requestIdleTimeoutMs: v.REQUEST_IDLE_TIMEOUT_MS,
    prefillAttempts: v.PREFILL_ATTEMPTS,
    prefillBackoffMs: v.PREFILL_BACKOFF_MS,
    prefillQueueMaxWaitMs: v.PREFILL_QUEUE_MAX_WAIT_MS,
    gatewayId: v.GATEWAY_ID ?? defaultGatewayId(),
    gatewayHeartbeatMs: v.GATEWAY_HEARTBEAT_MS,
    nodeProbeTimeoutMs: v.NODE_PROBE_TIMEOUT_MS,
    cancelAckTimeoutMs: v.CANCEL_ACK_TIMEOUT_MS,
    cancelAttempts: v.CANCEL_ATTEMPTS,
    prefillSilenceMs: v.PREFILL_SILENCE_MS,
    prefillResumes: v.PREFILL_RESUMES,
    resumeReplayMaxTokens: v.RESUME_REPLAY_MAX_TOKENS,
  });
}

/** The defaults of the optional reliability settings (as the env table shows them). */
export const RELIABILITY_DEFAULTS = {
  prefillQueueMaxWaitMs: 30_000, gatewayHeartbeatMs: 1000, nodeProbeTimeoutMs: 1000, cancelAckTimeoutMs: 500, cancelAttempts: 5,
} as const;
