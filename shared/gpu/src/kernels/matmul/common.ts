// Pieces shared by the two matmul variants: the uniform block, the binding declarations and the WGSL helpers
// that read x and unpack weight words. Everything here is text generation; no GPU state.
import { bindings, type Bound, type StorageDecl } from '../../runtime/bindings.js';
import type { WeightDtype } from '../weight-dtype.js';

/** Sizes and offsets (in elements) live in uniforms, so every M shares one pipeline per variant. */
export const MATMUL_UNIFORMS = {
  M: 'u32', N: 'u32', K: 'u32',
  x_stride: 'u32', x_offset: 'u32',
  y_stride: 'u32', y_offset: 'u32',
  w_offset: 'u32',
} as const;

/**
 * The GEMM variants' uniforms: MATMUL_UNIFORMS plus split-K. Workgroup z = s takes K range [s·k_split,
 * min(K, (s + 1)·k_split)) and writes y from element s·split_stride on (k_split = K and one z: no split).
 */
export const GEMM_UNIFORMS = { ...MATMUL_UNIFORMS, k_split: 'u32', split_stride: 'u32' } as const;

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

/** Storage x, w, y (what every matmul variant binds first), x and w as vectors where aligned. */
export function matmulStorage(align: MatmulAlign): StorageDecl<'x' | 'w' | 'y'>[] {
  return [['x', `array<${align.vecX ? 'vec4<f32>' : 'f32'}>`], ['w', `array<${align.vecW ? 'vec4<u32>' : 'u32'}>`], ['y', 'array<f32>', 'read_write']];
}

const MATMUL_BINDINGS = [false, true].map((vecX) => [false, true].map((vecW) => bindings(matmulStorage({ vecX, vecW }), MATMUL_UNIFORMS)));
const GEMM_BINDINGS = [false, true].map((vecX) => [false, true].map((vecW) => bindings(matmulStorage({ vecX, vecW }), GEMM_UNIFORMS)));

/** The plain matmul bindings: x, w, y, then MATMUL_UNIFORMS. */
export function matmulBindings(align: MatmulAlign) {
  return MATMUL_BINDINGS[+align.vecX]![+align.vecW]!;
}

/** The GEMM variants' bindings: x, w, y, then GEMM_UNIFORMS. */
export function gemmBindings(align: MatmulAlign) {
  return GEMM_BINDINGS[+align.vecX]![+align.vecW]!;
}

/** A plain matmul's buffers, whichever variant runs it (they all declare x, w, y in that order). */
export function matmulBuffers(byName: { readonly x: Bound; readonly w: Bound; readonly y: Bound }): Bound[] {
  return MATMUL_BINDINGS[0]![0]!.buffers(byName);
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
      return `//!include bf16-unpack
fn w_lo(v: vec4<u32>) -> vec4<f32> { return bf16_lo4(v); }
fn w_hi(v: vec4<u32>) -> vec4<f32> { return bf16_hi4(v); }
`;
    case 'f16':
      return `//!include f16-unpack
fn w_lo(v: vec4<u32>) -> vec4<f32> { return f16_lo4(v); }
fn w_hi(v: vec4<u32>) -> vec4<f32> { return f16_hi4(v); }
`;
    case 'f32':
      return `fn w_f32(v: vec4<u32>) -> vec4<f32> { return bitcast<vec4<f32>>(v); }\n`;
  }
}

/** Emits `body(i)` for i in [0, n), joined by newlines (explicit unrolling keeps accumulators in registers). */
export function unroll(n: number, body: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => body(i)).join('\n');
}
