// Everything the decode node process reads from its environment, parsed once at start (main.ts) into one
// frozen object: the service's variables (COMMON_ENV's among them), the engine's, the GPU's and RoPE's.
import { parseEnv, type EnvOf } from '@latentwire/protocol';
import { GPU_ENV, MODEL_ENV, gpuOptions, type GpuOptions } from '@latentwire/gpu';
import type { RopeFreqPrecision } from '@latentwire/model';
import { DECODE_ENV } from './config.js';
import { SERVICE_ENV, serviceSettings, type ServiceSettings } from './service/env.js';

export const DECODE_NODE_ENV = { ...SERVICE_ENV, ...DECODE_ENV, ...GPU_ENV, ...MODEL_ENV };

export interface DecodeNodeEnv {
  readonly service: ServiceSettings;
  /** DECODE_ENV's values, sized against the model and the adapter once both are known (decodeSettingsFrom). */
  readonly decode: EnvOf<typeof DECODE_ENV>;
  readonly gpu: GpuOptions;
  readonly ropeFreqPrecision: RopeFreqPrecision;
}

export function decodeNodeEnv(e: NodeJS.ProcessEnv = process.env): DecodeNodeEnv {
  const v = parseEnv(DECODE_NODE_ENV, e);
  return Object.freeze({ service: serviceSettings(v), decode: v, gpu: gpuOptions(v), ropeFreqPrecision: v.ROPE_FREQ_PRECISION });
}
