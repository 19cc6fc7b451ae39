// Grammar masks applied to f32 logits [rows, vocab] in place (token-mask.wgsl): the constrained-decoding
// step between logit-adjust and the sampler. A mask row is ceil(vocab / 32) u32 words, bit i = token i allowed
// (TokenGrammar / GrammarState.mask in @latentwire/model).
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { wgslFile } from '../../runtime/wgsl-source.js';
import { defineKernel } from '../../runtime/define-kernel.js';

/** A batch row without a grammar. */
export const NO_MASK = 0xffffffff;
export const maskWords = (vocab: number): number => Math.ceil(vocab / 32);

const UNIFORMS = { rows: 'u32', vocab: 'u32', row_stride: 'u32', logits_offset: 'u32', row_offset: 'u32', words: 'u32', neg_inf_bits: 'u32' } as const;
const BINDINGS = bindings([['logits', 'array<f32>', 'read_write'], ['mask_rows', 'array<u32>'], ['masks', 'array<u32>']], UNIFORMS);

export const tokenMaskShader = defineKernel('token_mask', (_: Record<string, never>): KernelShader => BINDINGS.shader('token_mask', wgslFile(new URL('./token-mask.wgsl', import.meta.url), { BINDINGS: BINDINGS.wgsl })));

export interface TokenMaskArgs {
  /** f32 logits, changed in place; row r at logitsOffset + r · rowStride. */
  readonly logits: GPUBuffer;
  /** u32 per batch row (at rowOffset + r): its row of `masks`, or NO_MASK. */
  readonly maskRows: GPUBuffer;
  /** u32 [mask rows, maskWords(vocab)]. */
  readonly masks: GPUBuffer;
  readonly rows: number;
  readonly vocab: number;
  readonly rowStride?: number;
  readonly logitsOffset?: number;
  readonly rowOffset?: number;
}

export function tokenMask(a: TokenMaskArgs): KernelProgram {
  const rowStride = a.rowStride ?? a.vocab, logitsOffset = a.logitsOffset ?? 0, rowOffset = a.rowOffset ?? 0;
  const words = maskWords(a.vocab);
  if (a.rows > 0) {
    if ((logitsOffset + (a.rows - 1) * rowStride + a.vocab) * 4 > a.logits.size) throw new RangeError('tokenMask: logits buffer too small');
    if ((rowOffset + a.rows) * 4 > a.maskRows.size) throw new RangeError('tokenMask: maskRows buffer too small');
    if (a.masks.size < words * 4) throw new RangeError('tokenMask: masks buffer holds no row');
  }
  return {
    shader: tokenMaskShader({}),
    buffers: BINDINGS.buffers({ logits: a.logits, mask_rows: a.maskRows, masks: a.masks }),
    uniformValues: { rows: a.rows, vocab: a.vocab, row_stride: rowStride, logits_offset: logitsOffset, row_offset: rowOffset, words, neg_inf_bits: 0xff800000 },
    workgroups: [a.rows],
  };
}
