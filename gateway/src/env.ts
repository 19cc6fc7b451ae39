// Everything the gateway process reads from its environment (the model folder and log level from COMMON_ENV,
// the HTTP layer's and the cluster side's variables), parsed once at start into one frozen object.
import { COMMON_ENV, parseEnv, pickEnv, type LogLevel } from '@latentwire/protocol';
import { CLUSTER_ENV, clusterSettings, type ClusterSettings } from './cluster/env.js';
import { HTTP_ENV, httpSettings, type HttpSettings } from './http/env.js';

export const GATEWAY_ENV = { ...pickEnv(COMMON_ENV, 'MODEL_DIR', 'LOG_LEVEL'), ...HTTP_ENV, ...CLUSTER_ENV };

export interface GatewaySettings {
  /** The model folder the decode and prefill nodes serve (its fingerprint must match theirs). */
  readonly modelDir: string;
  readonly logLevel: LogLevel;
  readonly http: HttpSettings;
  readonly cluster: ClusterSettings;
}

export function gatewaySettingsFromEnv(e: NodeJS.ProcessEnv = process.env): GatewaySettings {
  const v = parseEnv(GATEWAY_ENV, e);
  return Object.freeze({ modelDir: v.MODEL_DIR, logLevel: v.LOG_LEVEL, http: httpSettings(v), cluster: clusterSettings(v) });
}
