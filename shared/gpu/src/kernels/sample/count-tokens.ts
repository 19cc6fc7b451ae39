// Adds each row's sampled token to its sequence's counts row (count-tokens.wgsl), on the GPU right after the
// sampler, so the next step's penalties see it.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { wgslFile } from '../../runtime/wgsl-source.js';
import { defineKernel } from '../../runtime/define-kernel.js';

const UNIFORMS = { rows: 'u32', vocab: 'u32', row_offset: 'u32' } as const;
const BINDINGS = bindings([['tokens', 'array<u32>'], ['params', 'array<u32>'], ['counts', 'array<u32>', 'read_write']], UNIFORMS);

export const countTokensShader = defineKernel('count_tokens', (_: Record<string, never>): KernelShader => BINDINGS.shader('count_tokens', wgslFile(new URL('./count-tokens.wgsl', import.meta.url), { BINDINGS: BINDINGS.wgsl })));

export interface CountTokensArgs {
  /** u32 sampled ids; row r's at rowOffset + r. */
  readonly tokens: GPUBuffer;
  /** packLogitParams output (countsRow of each row; NO_COUNTS rows are skipped). */
  readonly params: GPUBuffer;
  /** u32 [counts rows, vocab]. */
  readonly counts: GPUBuffer;
  readonly rows: number;
  readonly vocab: number;
  readonly rowOffset?: number;
}

export function countTokens(a: CountTokensArgs): KernelProgram {
  return {
    shader: countTokensShader({}),
    buffers: BINDINGS.buffers({ tokens: a.tokens, params: a.params, counts: a.counts }),
    uniformValues: { rows: a.rows, vocab: a.vocab, row_offset: a.rowOffset ?? 0 },
    workgroups: [Math.ceil(a.rows / 64)],
  };
}
