// Test helpers: one Gpu per test file, seeded random data of awkward sizes, and error measures.
import { Gpu } from '../../src/gpu/index.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { packWeights, type GpuTensor, type WeightDtype } from '../../src/kernels/weight-dtype.js';

let shared: Promise<Gpu> | null = null;

/** The test file's Gpu (lavapipe on CPU machines). */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.create({ adapter: process.env.WEBGPU_ADAPTER });
  return shared;
}

/** Seeded test data (mulberry32). */
export const rng = seededRandom;

/** Uniform values in [-scale, scale), never all zero. */
export function randomArray(n: number, seed: number, scale = 1): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * r() - 1) * scale;
  return out;
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

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
