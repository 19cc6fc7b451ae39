// logit_bias and penalties applied in place to f32 logits [rows, vocab] before the sampler; the rule is in
// logit-params.ts, the float64 spec in test/reference/sample.ts (applyLogitAdjust).
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { wgslFile } from '../../runtime/wgsl-source.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { LOGIT_PARAMS_BYTES } from './logit-params.js';

const UNIFORMS = { rows: 'u32', vocab: 'u32', row_stride: 'u32', logits_offset: 'u32', row_offset: 'u32' } as const;
const BINDINGS = bindings([['logits', 'array<f32>', 'read_write'], ['params', 'array<u32>'], ['counts', 'array<u32>'], ['bias', 'array<u32>']], UNIFORMS);

export const logitAdjustShader = defineKernel('logit_adjust', (_: Record<string, never>): KernelShader => BINDINGS.shader('logit_adjust', wgslFile(new URL('./logit-adjust.wgsl', import.meta.url), { BINDINGS: BINDINGS.wgsl })));

export interface LogitAdjustArgs {
  /** f32 logits, changed in place; row r at logitsOffset + r · rowStride. */
  readonly logits: GPUBuffer;
  /** packLogitParams output; row r's at rowOffset + r. */
  readonly params: GPUBuffer;
  /** u32 [counts rows, vocab] (countsRow()); rows named by the params. */
  readonly counts: GPUBuffer;
  /** packLogitBias output. */
  readonly bias: GPUBuffer;
  readonly rows: number;
  readonly vocab: number;
  readonly rowStride?: number;
  readonly logitsOffset?: number;
  readonly rowOffset?: number;
}

export function logitAdjust(a: LogitAdjustArgs): KernelProgram {
  const rowStride = a.rowStride ?? a.vocab, logitsOffset = a.logitsOffset ?? 0, rowOffset = a.rowOffset ?? 0;
  if (a.rows > 0) {
    if ((logitsOffset + (a.rows - 1) * rowStride + a.vocab) * 4 > a.logits.size) throw new RangeError('logitAdjust: logits buffer too small');
    if ((rowOffset + a.rows) * LOGIT_PARAMS_BYTES > a.params.size) throw new RangeError('logitAdjust: params buffer too small');
    if (a.counts.size < a.vocab * 4) throw new RangeError('logitAdjust: counts buffer holds no row');
  }
  return {
    shader: logitAdjustShader({}),
    buffers: BINDINGS.buffers({ logits: a.logits, params: a.params, counts: a.counts, bias: a.bias }),
    uniformValues: { rows: a.rows, vocab: a.vocab, row_stride: rowStride, logits_offset: logitsOffset, row_offset: rowOffset },
    workgroups: [a.rows],
  };
}
