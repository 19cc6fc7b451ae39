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

/** Dawn toggles the subgroup-matrix (tensor-core) tests need on NVIDIA: allow_unsafe_apis exposes subgroup matrices,
 *  vulkan_enable_f16_on_nvidia shader-f16; harmless where they do not apply (lavapipe). */
export const TENSOR_CORE_TOGGLES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'] as const;

/** A Gpu for the tensor-core tests: TENSOR_CORE_TOGGLES plus the toggles DAWN_FEATURES names (the GPU machine's
 *  runs add disable_robustness, as served), on WEBGPU_ADAPTER's adapter. */
export function tensorCoreTestGpu(): Promise<Gpu> {
  const opts = gpuOptionsFromEnv(process.env);
  return Gpu.create({ ...opts, dawnFeatures: [...new Set([...TENSOR_CORE_TOGGLES, ...(opts.dawnFeatures ?? [])])] });
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

/**
 * A tensor-core shader's source made compilable where subgroup matrices are missing (lavapipe, so CI): the
 * matrix types become one-float structs and the matrix builtins functions of the same arguments (the pointer
 * dropped), so the rest (declarations, indexing, control flow, every other builtin) is type-checked as written.
 * It computes nothing meaningful: a check of the WGSL, never a stand-in for the kernel.
 */
export function standInMatrices(source: string): string {
  const lines = source.split('\n');
  const directives = lines.filter((l) => /^(enable|diagnostic)\b/.test(l) && !/subgroup_matrix/.test(l));
  let src = lines.filter((l) => !/^(enable|diagnostic)\b/.test(l)).join('\n')
    .replace(/\bsubgroup_matrix_(left|right|result)<[^>]*>/g, 'SM_$1')
    .replace(/subgroupMatrixLoad<(\w+), \w+>\(&?[\w[\].]+, /g, 'sm_load_$1(')
    .replace(/subgroupMatrixMultiplyAccumulate\(/g, 'sm_mma(')
    .replace(/subgroupMatrixStore<\w+>\(&?[\w[\].]+, /g, 'sm_store(');
  const loaded = [...new Set([...src.matchAll(/sm_load_(\w+)\(/g)].map((m) => m[1]!))];
  src = `struct SM_left { v: f32 }
struct SM_right { v: f32 }
struct SM_result { v: f32 }
${loaded.map((t) => `fn sm_load_${t}(offset: u32, stride: u32) -> ${t} { return ${t}(f32(offset + stride)); }`).join('\n')}
fn sm_mma(a: SM_left, b: SM_right, c: SM_result) -> SM_result { return SM_result(fma(a.v, b.v, c.v)); }
fn sm_store(offset: u32, m: SM_result, stride: u32) {}
${src}`;
  return `${directives.join('\n')}\n${src}`;
}

/** The WGSL compiler's errors for `source` ("" when it compiles). */
export async function wgslErrors(gpu: Gpu, source: string): Promise<string> {
  const info = await gpu.device.createShaderModule({ code: source }).getCompilationInfo();
  return info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
}
