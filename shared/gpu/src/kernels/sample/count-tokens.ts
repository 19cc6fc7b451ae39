// Adds each row's sampled token to its sequence's counts row (count-tokens.wgsl), on the GPU right after the
// sampler, so the next step's penalties see it.
import { readFileSync } from 'node:fs';
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { uniformStructWgsl } from '../../runtime/uniforms.js';
import { memoShader } from '../../runtime/memo-shader.js';

const UNIFORMS = { rows: 'u32', vocab: 'u32', row_offset: 'u32' } as const;

export const countTokensShader = memoShader((): KernelShader => ({
  label: 'count_tokens',
  uniforms: UNIFORMS,
  source: `${uniformStructWgsl(UNIFORMS, 3)}\n${readFileSync(new URL('./count-tokens.wgsl', import.meta.url), 'utf8')}`,
}));

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
    shader: countTokensShader(),
    buffers: [a.tokens, a.params, a.counts],
    uniformValues: { rows: a.rows, vocab: a.vocab, row_offset: a.rowOffset ?? 0 },
    workgroups: [Math.ceil(a.rows / 64)],
  };
}
