// GPU helpers for tests and benches (dev-only subpath `@latentwire/gpu/testing`): one Gpu per test file,
// weights uploaded in their stored form, values rounded to what a dtype stores.
import { packWeights, type WeightDtype } from '@latentwire/model';
import { Gpu } from './runtime/index.js';
import { gpuOptionsFromEnv } from './runtime/gpu-env.js';
import type { GpuTensor } from './kernels/weight-dtype.js';

let shared: Promise<Gpu> | null = null;

/** The test file's Gpu (lavapipe on CPU machines), with the GPU_ENV settings (WEBGPU_ADAPTER, DAWN_FEATURES...). */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.create(gpuOptionsFromEnv(process.env));
  return shared;
}

/** Rounds values to what `dtype` stores, so the CPU reference sees exactly the GPU's weights. */
export function roundTo(values: Float64Array, dtype: WeightDtype): Float64Array {
  if (dtype === 'f32') return Float64Array.from(new Float32Array(values));
  const packed = packWeights(values, dtype);
  const out = new Float64Array(values.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    const half = (packed[i >> 1]! >>> (16 * (i & 1))) & 0xffff;
    if (dtype === 'bf16') {
      u[0] = half << 16;
      out[i] = f[0]!;
    } else {
      const s = half & 0x8000 ? -1 : 1, e = (half >> 10) & 0x1f, m = half & 0x3ff;
      out[i] = e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return out;
}

export function uploadF32(gpu: Gpu, label: string, values: ArrayLike<number>): GPUBuffer {
  return gpu.upload(label, Float32Array.from(values as ArrayLike<number>));
}

export function uploadWeight(gpu: Gpu, label: string, values: Float64Array, dtype: WeightDtype, shape: number[]): GpuTensor {
  return { buffer: gpu.upload(label, packWeights(values, dtype)), dtype, shape };
}
