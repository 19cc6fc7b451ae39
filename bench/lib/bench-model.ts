// The GPU and model config a whole-model bench runs on: BENCH_CONFIG's shapes, all its layers on a GPU; on a
// software adapter (lavapipe) 2 layers unless BENCH_LAYERS says, and a vocabulary of at most 16,384 so the
// embedding table and LM head fit its 128 MiB bindings.
import { readFileSync } from 'node:fs';
import { Gpu, gpuOptions } from '@latentwire/gpu';
import { normalizeConfig, type MlaConfig } from '@latentwire/model';
import type { benchEnv } from './env.js';
import { isSoftwareAdapter } from './report.js';

export interface BenchModel {
  readonly gpu: Gpu;
  readonly software: boolean;
  /** The config as the file has it. */
  readonly base: MlaConfig;
  /** The config benched (layers and vocabulary as above). */
  readonly cfg: MlaConfig;
}

export async function benchModel(env: ReturnType<typeof benchEnv>): Promise<BenchModel> {
  const gpu = await Gpu.create(gpuOptions(env));
  const info = gpu.adapterInfo;
  const software = isSoftwareAdapter(info);
  const base = normalizeConfig(JSON.parse(readFileSync(env.BENCH_CONFIG, 'utf8')), env.BENCH_CONFIG);
  const layers = env.BENCH_LAYERS ?? (software ? 2 : base.numLayers);
  const cfg: MlaConfig = { ...base, numLayers: layers, vocabSize: software ? Math.min(base.vocabSize, 16384) : base.vocabSize };
  console.log(`adapter: ${info.vendor} ${info.description || info.device}; model: ${env.BENCH_CONFIG.split('/').pop()} with ${layers} of ${base.numLayers} layers`);
  return { gpu, software, base, cfg };
}
