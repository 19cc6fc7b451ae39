// Split-K's sum (split-reduce.wgsl): the GEMM's partial products [splits, M, N] into y, plain or accumulated.
import type { KernelProgram } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { fillWgsl, loadWgsl } from '../../runtime/wgsl-source.js';

const WORKGROUP = 256;
const SPLIT_REDUCE_WGSL = loadWgsl(new URL('./split-reduce.wgsl', import.meta.url));
const BINDINGS = bindings([['part', 'array<f32>'], ['y', 'array<f32>', 'read_write']], {
  M: 'u32', N: 'u32', splits: 'u32', split_stride: 'u32', y_stride: 'u32', y_offset: 'u32',
});

export const splitReduceShader = defineKernel('matmul_split_reduce', ({ accumulate }: { readonly accumulate: boolean }) =>
  BINDINGS.shader(`matmul_split_reduce${accumulate ? '_acc' : ''}`, `${BINDINGS.wgsl}
${fillWgsl(SPLIT_REDUCE_WGSL, { ACC: accumulate ? 'y[yi] + ' : '' }, 'split-reduce.wgsl')}`));

export interface SplitReduceArgs {
  /** The partial products: split s's [M, N] block from element s·splitStride. */
  readonly part: GPUBuffer;
  readonly y: GPUBuffer;
  readonly M: number;
  readonly N: number;
  readonly splits: number;
  readonly splitStride: number;
  readonly yStride: number;
  readonly yOffset: number;
  readonly accumulate: boolean;
  readonly maxWorkgroupsPerDimension: number;
}

/** One dispatch; the caller (matmulPrograms) has checked the sizes. */
export function splitReduce(a: SplitReduceArgs): KernelProgram {
  const blocks = Math.ceil((a.M * a.N) / WORKGROUP);
  const gx = Math.min(blocks, a.maxWorkgroupsPerDimension);
  return {
    shader: splitReduceShader({ accumulate: a.accumulate }),
    buffers: BINDINGS.buffers({ part: a.part, y: a.y }),
    uniformValues: { M: a.M, N: a.N, splits: a.splits, split_stride: a.splitStride, y_stride: a.yStride, y_offset: a.yOffset },
    workgroups: [gx, Math.ceil(blocks / gx)],
  };
}
