// The CLI's environment: the model folder (COMMON_ENV's MODEL_DIR; --model wins), the engine's DECODE_ENV
// (its flags win), the GPU's and RoPE's. Parsed once before the GPU is touched; a bad value exits 2 naming it.
import { COMMON_ENV, parseEnv, pickEnv, type EnvOf } from '@latentwire/protocol';
import { GPU_ENV, MODEL_ENV } from '@latentwire/gpu';
import { DECODE_ENV } from '../config.js';

export const CLI_ENV = { ...pickEnv(COMMON_ENV, 'MODEL_DIR'), ...DECODE_ENV, ...GPU_ENV, ...MODEL_ENV };

export function cliEnv(e: NodeJS.ProcessEnv = process.env): EnvOf<typeof CLI_ENV> {
  return parseEnv(CLI_ENV, e);
}
