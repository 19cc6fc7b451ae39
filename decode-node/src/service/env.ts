// The decode service's own environment variables, composed from the common ones (COMMON_ENV); the engine's
// are DECODE_ENV in ../config.ts, the GPU's GPU_ENV and MODEL_ENV in @latentwire/gpu, and DECODE_NODE_ENV
// (../node-env.ts) is all of them, parsed once at start into a frozen object. A bad value fails start-up naming it.
import { hostname } from 'node:os';
import { COMMON_ENV, env, NATS_AUTH_ENV, natsAuthFromEnv, parseEnv, pickEnv, type EnvOf, type LogLevel, type NatsAuth } from '@latentwire/protocol';
import { ID_MAX_LENGTH, ID_PATTERN } from '@latentwire/protocol';

/** decode-<hostname>-<pid>, the hostname cut to what an id may hold. */
function defaultNodeId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_.:-]/g, '-').replace(/\.{2,}/g, '.').replace(/^\.|\.$/g, '') || 'host';
  return `decode-${host}-${process.pid}`.slice(0, ID_MAX_LENGTH).replace(/\.$/, '');
}

export const SERVICE_ENV = {
  ...pickEnv(COMMON_ENV, 'NATS_URL', 'MODEL_DIR', 'NATS_SUBJECT_PREFIX', 'LOG_LEVEL'),
  ...NATS_AUTH_ENV,
  NODE_ID: env
    .mapped<string | undefined>(undefined, (id) => {
      if (id.length > ID_MAX_LENGTH || !ID_PATTERN.test(id)) throw new RangeError(id);
      return id;
    }, `expected 1-${ID_MAX_LENGTH} of [A-Za-z0-9_.:-], no empty dot-separated part`)
    .meta({ description: "the node's id in subjects and heartbeats", shown: 'decode-<host>-<pid>' }),
  HEARTBEAT_MS: env.int(1000, 10, 600_000).describe("heartbeat period; the gateway's view of free pages is this stale at worst"),
  TOKEN_FLUSH_MS: env.int(5, 0, 10_000).describe('how long tokens wait to share a message (0 = one message per step)'),
  DRAIN_TIMEOUT_MS: env.int(30_000, 0, 3_600_000).describe('on SIGTERM the node takes nothing new and lets running sequences finish this long, then fails the rest and exits'),
  GATEWAY_SILENCE_MS: env.int(15_000, 0, 3_600_000).describe("a gateway whose heartbeats stop this long has its requests on this node cancelled (0 = never)"),
  METRICS_PORT: env.int(0, 0, 65535).describe('operations port: `GET /health` (alive), `/ready` (weights loaded, pipelines compiled, on NATS), `/metrics`; 0 = off'),
};

export interface ServiceSettings {
  readonly natsServers: readonly string[];
  readonly natsAuth: NatsAuth | undefined;
  readonly nodeId: string;
  readonly modelDir: string;
  readonly subjectPrefix: string;
  readonly heartbeatMs: number;
  readonly tokenFlushMs: number;
  readonly metricsPort: number;
  readonly logLevel: LogLevel;
  readonly drainTimeoutMs: number;
  readonly gatewaySilenceMs: number;
}

export function serviceSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): ServiceSettings {
  return serviceSettings(parseEnv(SERVICE_ENV, e));
}

export function serviceSettings(v: EnvOf<typeof SERVICE_ENV>): ServiceSettings {
  return Object.freeze({
    natsServers: Object.freeze([...v.NATS_URL]), natsAuth: natsAuthFromEnv(v), nodeId: v.NODE_ID ?? defaultNodeId(), modelDir: v.MODEL_DIR,
    subjectPrefix: v.NATS_SUBJECT_PREFIX, heartbeatMs: v.HEARTBEAT_MS, tokenFlushMs: v.TOKEN_FLUSH_MS,
    metricsPort: v.METRICS_PORT, logLevel: v.LOG_LEVEL, drainTimeoutMs: v.DRAIN_TIMEOUT_MS, gatewaySilenceMs: v.GATEWAY_SILENCE_MS,
  });
}
