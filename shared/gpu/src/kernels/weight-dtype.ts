// Weights stay on the GPU in their stored 16-bit form, packed two per u32 (bf16 or f16), or as f32 when a
// checkpoint stores f32. Kernels read them through `weight_at(i)`, generated here per dtype, so one kernel
// source serves every dtype as a compile-time variant.

import type { WeightDtype } from '@latentwire/model';
export type { WeightDtype };

/** A weight tensor resident on the GPU: row-major, [rows, cols] for linears ([out, in] as HF stores them). */
export interface GpuTensor {
  readonly buffer: GPUBuffer;
  readonly dtype: WeightDtype;
  readonly shape: readonly number[];
}

/**
 * WGSL function `fn <name>(i: u32) -> f32` reading element i of the u32-packed array `<array>` in `dtype`.
 * bf16 is the top half of an f32, so unpacking is a shift; f16 uses unpack2x16float (no shader-f16 needed).
 */
export function weightLoadWgsl(dtype: WeightDtype, array: string, name = 'weight_at'): string {
  switch (dtype) {
    case 'bf16':
      return `fn ${name}(i: u32) -> f32 {
  let word = ${array}[i >> 1u];
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}\n`;
    case 'f16':
      return `fn ${name}(i: u32) -> f32 {
  return unpack2x16float(${array}[i >> 1u])[i & 1u];
}\n`;
    case 'f32':
      return `fn ${name}(i: u32) -> f32 {
  return bitcast<f32>(${array}[i]);
}\n`;
  }
}

