// RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) * w, one workgroup per row. Computed in f32
// as transformers does (it upcasts to float32 before normalizing). Input/output rows may be strided so the
// latent part of a wider row (kv_a_proj_with_mqa's output) can be normalized in place of a copy.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { weightLoadWgsl, type GpuTensor } from '../weight-dtype.js';
import { type WeightDtype } from '@latentwire/model';
import { defineKernel } from '../../runtime/define-kernel.js';
import { normedWriteWgsl, sumSquaresWgsl } from '../../runtime/wgsl-pieces/norm-walks.js';

const WORKGROUP = 128;
const UNIFORMS = { rows: 'u32', cols: 'u32', in_stride: 'u32', in_offset: 'u32', out_stride: 'u32', out_offset: 'u32', eps: 'f32' } as const;

/** In place (y = x) binds one read_write buffer: WebGPU forbids binding a buffer twice when one is writable. */
const IN_PLACE = bindings([['x', 'array<f32>', 'read_write'], ['w', 'array<u32>']], UNIFORMS);
const OUT_OF_PLACE = bindings([['x', 'array<f32>'], ['w', 'array<u32>'], ['y', 'array<f32>', 'read_write']], UNIFORMS);

function build_rmsNormShader({ dtype, inPlace }: { readonly dtype: WeightDtype; readonly inPlace: boolean }): KernelShader {
  const B = inPlace ? IN_PLACE : OUT_OF_PLACE;
  return B.shader(`rms_norm_${dtype}${inPlace ? '_in_place' : ''}`, /* wgsl */ `
${B.wgsl}
${weightLoadWgsl(dtype, 'w')}
const WG: u32 = ${WORKGROUP}u;
//!include wg-reduce
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let src = row * u.in_stride + u.in_offset;
  // every loop issues 4 loads a trip before using them (a load a trip, each waited on, made a 2048-wide row 16
  // round trips twice over), the squares added in the same order as one at a time
  var sum = 0.0;
  ${sumSquaresWgsl({ acc: 'sum', first: 'lid', stride: 'WG', end: 'u.cols', load: (c) => `x[src + ${c}]` })}
  let inv = inverseSqrt(wg_sum(&partial, lid, sum) / f32(u.cols) + u.eps);
  let dst = row * u.out_stride + u.out_offset;
  ${normedWriteWgsl({
    first: 'lid', stride: 'WG', end: 'u.cols', load: (c) => `x[src + ${c}]`, inv: 'inv', weight: (c) => `weight_at(${c})`,
    store: (c, v) => `${inPlace ? 'x' : 'y'}[dst + ${c}] = ${v};`,
  })}
}
`);
}

export interface RmsNormArgs {
  readonly x: GPUBuffer;
  readonly weight: GpuTensor;
  readonly y: GPUBuffer;
  readonly rows: number;
  readonly cols: number;
  readonly eps: number;
  /** Row strides and element offsets (default: dense rows of `cols`). */
  readonly inStride?: number;
  readonly inOffset?: number;
  readonly outStride?: number;
  readonly outOffset?: number;
}

export function rmsNorm(a: RmsNormArgs): KernelProgram {
  if (a.weight.shape.length !== 1 || a.weight.shape[0] !== a.cols) {
    throw new RangeError(`rmsNorm: weight shape [${a.weight.shape}] does not match cols ${a.cols}`);
  }
  const inPlace = a.x === a.y;
  // in place, each thread rewrites only the elements it read before the reduction's barriers: no race
  return {
    shader: rmsNormShader({ dtype: a.weight.dtype, inPlace }),
    buffers: inPlace ? IN_PLACE.buffers({ x: a.x, w: a.weight.buffer }) : OUT_OF_PLACE.buffers({ x: a.x, w: a.weight.buffer, y: a.y }),
    uniformValues: {
      rows: a.rows, cols: a.cols,
      in_stride: a.inStride ?? a.cols, in_offset: a.inOffset ?? 0,
      out_stride: a.outStride ?? a.cols, out_offset: a.outOffset ?? 0,
      eps: a.eps,
    },
    workgroups: [a.rows],
  };
}

export const rmsNormShader = defineKernel('rms_norm', build_rmsNormShader);
