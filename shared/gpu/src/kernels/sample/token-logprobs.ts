// Logprobs of each row's sampled token and of its top alternatives (token-logprobs.wgsl): log-softmax of the
// logits the sampler read (after logit-adjust, before temperature / top-k / top-p). Output LOGPROBS_WORDS per
// row (unpackLogprobs reads it); rows whose topLogprobs is NO_LOGPROBS are skipped.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { wgslFile } from '../../runtime/wgsl-source.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { LOGIT_PARAMS_BYTES, LOGPROBS_WORDS } from './logit-params.js';

const UNIFORMS = { rows: 'u32', vocab: 'u32', row_stride: 'u32', logits_offset: 'u32', row_offset: 'u32' } as const;
const BINDINGS = bindings([['logits', 'array<f32>'], ['params', 'array<u32>'], ['tokens', 'array<u32>'], ['out', 'array<u32>', 'read_write']], UNIFORMS);

export const tokenLogprobsShader = defineKernel('token_logprobs', (_: Record<string, never>): KernelShader => BINDINGS.shader('token_logprobs', wgslFile(new URL('./token-logprobs.wgsl', import.meta.url), { BINDINGS: BINDINGS.wgsl })));

export interface TokenLogprobsArgs {
  readonly logits: GPUBuffer;
  /** packLogitParams output. */
  readonly params: GPUBuffer;
  /** u32 sampled ids; row r's at rowOffset + r. */
  readonly tokens: GPUBuffer;
  /** u32 [rows, LOGPROBS_WORDS]; row r's at rowOffset + r. */
  readonly out: GPUBuffer;
  readonly rows: number;
  readonly vocab: number;
  readonly rowStride?: number;
  readonly logitsOffset?: number;
  readonly rowOffset?: number;
}

export function tokenLogprobs(a: TokenLogprobsArgs): KernelProgram {
  const rowStride = a.rowStride ?? a.vocab, logitsOffset = a.logitsOffset ?? 0, rowOffset = a.rowOffset ?? 0;
  if (a.rows > 0) {
    if ((logitsOffset + (a.rows - 1) * rowStride + a.vocab) * 4 > a.logits.size) throw new RangeError('tokenLogprobs: logits buffer too small');
    if ((rowOffset + a.rows) * LOGIT_PARAMS_BYTES > a.params.size) throw new RangeError('tokenLogprobs: params buffer too small');
    if ((rowOffset + a.rows) * LOGPROBS_WORDS * 4 > a.out.size) throw new RangeError('tokenLogprobs: out buffer too small');
  }
  return {
    shader: tokenLogprobsShader({}),
    buffers: BINDINGS.buffers({ logits: a.logits, params: a.params, tokens: a.tokens, out: a.out }),
    uniformValues: { rows: a.rows, vocab: a.vocab, row_stride: rowStride, logits_offset: logitsOffset, row_offset: rowOffset },
    workgroups: [a.rows],
  };
}
