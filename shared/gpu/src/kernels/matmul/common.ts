// Pieces shared by the two matmul variants: the uniform block, the binding declarations and the WGSL helpers
// that read x and unpack weight words. Everything here is text generation; no GPU state.
import { uniformStructWgsl } from '../../runtime/uniforms.js';
import type { WeightDtype } from '../weight-dtype.js';

/** Sizes and offsets (in elements) live in uniforms, so every M shares one pipeline per variant. */
export const MATMUL_UNIFORMS = {
  M: 'u32', N: 'u32', K: 'u32',
  x_stride: 'u32', x_offset: 'u32',
  y_stride: 'u32', y_offset: 'u32',
  w_offset: 'u32',
} as const;

/** Alignment facts decided on the host, each turning on a vectorized load path. */
export interface MatmulAlign {
  /** x rows read as vec4<f32>: K, xStride and xOffset are multiples of 4. */
  readonly vecX: boolean;
  /** W rows read as vec4<u32> (8 16-bit or 4 f32 values): K and the weight offset are multiples of that. */
  readonly vecW: boolean;
}

/** Weight elements per vec4<u32> word group. */
export function weightsPerVec(dtype: WeightDtype): number {
  return dtype === 'f32' ? 4 : 8;
}

/** Binding declarations: x @0, w @1, y @2, uniforms @3. */
export function bindingsWgsl(align: MatmulAlign): string {
  return `@group(0) @binding(0) var<storage, read> x: array<${align.vecX ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(1) var<storage, read> w: array<${align.vecW ? 'vec4<u32>' : 'u32'}>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${uniformStructWgsl(MATMUL_UNIFORMS, 3)}`;
}

/** `x4(i)`: the 4 activations at element i (a multiple of 4 when vecX). */
export function xLoadWgsl(align: MatmulAlign): string {
  return align.vecX
    ? `fn x4(i: u32) -> vec4<f32> { return x[i >> 2u]; }\n`
    : `fn x4(i: u32) -> vec4<f32> { return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }\n`;
}

/**
 * For the vectorized weight path: `w_lo(v)` / `w_hi(v)` unpack a vec4<u32> of 16-bit values into its first and
 * last 4 elements (bf16 word j holds element 2j in its low half, 2j+1 in its high half). f32 words hold 4
 * elements, which `w_f32(v)` returns.
 */
export function weightUnpackWgsl(dtype: WeightDtype): string {
  switch (dtype) {
    case 'bf16':
      return `fn w_lo(v: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(v.x << 16u, v.x & 0xffff0000u, v.y << 16u, v.y & 0xffff0000u));
}
fn w_hi(v: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(v.z << 16u, v.z & 0xffff0000u, v.w << 16u, v.w & 0xffff0000u));
}
`;
    case 'f16':
      return `fn w_lo(v: vec4<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)); }
fn w_hi(v: vec4<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w)); }
`;
    case 'f32':
      return `fn w_f32(v: vec4<u32>) -> vec4<f32> { return bitcast<vec4<f32>>(v); }\n`;
  }
}

/** Emits `body(i)` for i in [0, n), joined by newlines (explicit unrolling keeps accumulators in registers). */
export function unroll(n: number, body: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => body(i)).join('\n');
}
