// WebGPU settings every GPU process reads.
import type { GpuOptions } from './device.js';
import { env, parseEnv } from '@latentwire/protocol';

export const GPU_ENV = {
  /** Substring of the adapter to use when several exist (Dawn's adapter= flag). */
  WEBGPU_ADAPTER: env.optionalStr(),
  /** Dawn toggles, comma-separated. On NVIDIA: allow_unsafe_apis,vulkan_enable_f16_on_nvidia. */
  DAWN_FEATURES: env.list([]),
  /** GPU timestamps per kernel (printed by benchmarks and the CLI's --profile). */
  GPU_PROFILE: env.bool(false),
  /** Print each generated WGSL source as it is compiled. */
  DUMP_WGSL: env.bool(false),
};

export function gpuOptionsFromEnv(e: NodeJS.ProcessEnv = process.env): GpuOptions {
  const v = parseEnv(GPU_ENV, e);
  return { adapter: v.WEBGPU_ADAPTER, dawnFeatures: v.DAWN_FEATURES, profile: v.GPU_PROFILE, dumpWgsl: v.DUMP_WGSL };
}

export const MODEL_ENV = {
  /** RoPE inverse frequencies: `checkpoint` rounds them to a bf16 checkpoint's dtype as transformers does; `f32` keeps them exact (DeepSeek's training code, vLLM). */
  ROPE_FREQ_PRECISION: env.oneOf(['checkpoint', 'f32'] as const, 'checkpoint'),
};

export function ropeFreqPrecisionFromEnv(e: NodeJS.ProcessEnv = process.env): 'f32' | undefined {
  return parseEnv(MODEL_ENV, e).ROPE_FREQ_PRECISION === 'f32' ? 'f32' : undefined;
}
