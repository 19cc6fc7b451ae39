// The spread sampler's last dispatch (sample-draw.wgsl), one workgroup a row: the token from the search's
// final state and the chunks' kept masses. Composed by sampleSpread (sample-spread.ts).
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import type { SpreadRows } from './sample-search.js';
import { wgslFile } from '../../runtime/wgsl-source.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { SAMPLING_UNIFORM_WGSL } from './sampling-uniform.js';

const UNIFORMS = { vocab: 'u32', row_stride: 'u32', logits_offset: 'u32', row_offset: 'u32', chunks: 'u32', slot: 'u32' } as const;
const BINDINGS = bindings([
  ['logits', 'array<u32>'], ['params', 'array<u32>'], ['state', 'array<SearchState>'], ['kept', 'array<f32>'], ['out', 'array<u32>', 'read_write'],
], UNIFORMS);

export const sampleDrawShader = defineKernel('sample_draw', (_: Record<string, never>): KernelShader =>
  BINDINGS.shader('sample_draw', `${SAMPLING_UNIFORM_WGSL}\n${wgslFile(new URL('./sample-draw.wgsl', import.meta.url), { BINDINGS: BINDINGS.wgsl })}`));

export interface SampleDrawArgs extends SpreadRows {
  readonly out: GPUBuffer;
  /** The state slot the search's last dispatch wrote (its step % 2). */
  readonly slot: number;
}

/** The checks are the caller's (sampleSpread). */
export function sampleDraw(a: SampleDrawArgs): KernelProgram {
  return {
    shader: sampleDrawShader({}),
    buffers: BINDINGS.buffers({ logits: a.logits, params: a.params, state: a.state, kept: a.kept, out: a.out }),
    uniformValues: { vocab: a.vocab, row_stride: a.rowStride, logits_offset: a.logitsOffset, row_offset: a.rowOffset, chunks: a.chunks, slot: a.slot },
    workgroups: [a.rows],
  };
}
