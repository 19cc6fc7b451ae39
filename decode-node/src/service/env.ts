// The decode service's own environment variables (the engine's are DECODE_ENV in ../config.ts, the GPU's
// GPU_ENV in shared), parsed once at start into a frozen object. A bad value fails start-up naming it.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, env, parseEnv } from '@latentwire/protocol';
import { DEFAULT_SUBJECT_PREFIX, ID_MAX_LENGTH, ID_PATTERN, wireSubjects } from '@latentwire/protocol';

/** The repo's tiny fixture, from dist/src/service/env.js. */
const DEFAULT_MODEL_DIR = resolve(fileURLToPath(import.meta.url), '../../../../../models/tiny-deepseek-v2');

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SERVICE_ENV = {
  /** NATS server(s), comma-separated. */
  NATS_URL: env.list(['nats://127.0.0.1:4222']),
  /** This node's id in subjects and heartbeats; default decode-<hostname>-<pid>. */
  NODE_ID: env.optionalStr(),
  /** The model folder (config.json, safetensors, tokenizer). */
  MODEL_DIR: env.str(DEFAULT_MODEL_DIR),
  /** First token(s) of every subject, e.g. `lw` → lw.heartbeat, lw.decode.<node>.kv. */
  NATS_SUBJECT_PREFIX: env.str(DEFAULT_SUBJECT_PREFIX),
  /** Heartbeat period (ms); the gateway's view of free pages is this stale at worst. */
  HEARTBEAT_MS: env.int(1000, 10, 600_000),
  /** How long a request's tokens wait to be sent together (ms); 0 = a message per step. */
  TOKEN_FLUSH_MS: env.int(5, 0, 10_000),
  /** Port of the Prometheus /metrics endpoint; 0 = none. */
  METRICS_PORT: env.int(0, 0, 65535),
  LOG_LEVEL: env.oneOf(LOG_LEVELS, 'info'),
};

export interface ServiceSettings {
  readonly natsServers: readonly string[];
  readonly nodeId: string;
  readonly modelDir: string;
  readonly subjectPrefix: string;
  readonly heartbeatMs: number;
  readonly tokenFlushMs: number;
  readonly metricsPort: number;
  readonly logLevel: (typeof LOG_LEVELS)[number];
}

export function serviceSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): ServiceSettings {
  const v = parseEnv(SERVICE_ENV, e);
  const nodeId = v.NODE_ID ?? defaultNodeId();
  if (nodeId.length > ID_MAX_LENGTH || !ID_PATTERN.test(nodeId)) {
    throw new ConfigError(`invalid environment:\n  NODE_ID=${JSON.stringify(nodeId)}: expected 1-${ID_MAX_LENGTH} of [A-Za-z0-9_.:-], no empty dot-separated part`);
  }
  try {
    wireSubjects(v.NATS_SUBJECT_PREFIX);
  } catch (cause) {
    throw new ConfigError(`invalid environment:\n  NATS_SUBJECT_PREFIX=${JSON.stringify(v.NATS_SUBJECT_PREFIX)}: ${(cause as Error).message}`, { cause });
  }
  if (v.NATS_URL.length === 0) throw new ConfigError('invalid environment:\n  NATS_URL: no server given');
  return Object.freeze({
    natsServers: Object.freeze([...v.NATS_URL]), nodeId, modelDir: v.MODEL_DIR, subjectPrefix: v.NATS_SUBJECT_PREFIX,
    heartbeatMs: v.HEARTBEAT_MS, tokenFlushMs: v.TOKEN_FLUSH_MS, metricsPort: v.METRICS_PORT, logLevel: v.LOG_LEVEL,
  });
}

/** decode-<hostname>-<pid>, the hostname cut to what an id may hold. */
function defaultNodeId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_.:-]/g, '-').replace(/\.{2,}/g, '.').replace(/^\.|\.$/g, '') || 'host';
  return `decode-${host}-${process.pid}`.slice(0, ID_MAX_LENGTH).replace(/\.$/, '');
}
