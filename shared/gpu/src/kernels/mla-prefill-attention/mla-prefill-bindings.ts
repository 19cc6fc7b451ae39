// What both MLA prefill kernels bind: the same buffers in the same order (the launcher binds either through
// one list) and the same uniforms; the subgroup-matrix kernel reads the input rows as 16-byte words.
import { bindings } from '../../runtime/bindings.js';

export const MLA_PREFILL_UNIFORMS = {
  q_len: 'u32',
  kv_len: 'u32',
  q_pos0: 'u32',
  scale_log2e: 'f32',
  q_row_stride: 'u32',
  q_head_stride: 'u32',
  kv_row_stride: 'u32',
  kv_head_stride: 'u32',
  lat_row_stride: 'u32',
  kpe_offset: 'u32',
  out_row_stride: 'u32',
  out_head_stride: 'u32',
} as const;

const bindingsOf = (rows: string) => bindings(
  [['q', `array<${rows}>`], ['kv', `array<${rows}>`], ['latent', `array<${rows}>`], ['out', 'array<f32>', 'read_write']],
  MLA_PREFILL_UNIFORMS,
);

export const MLA_PREFILL_BINDINGS = bindingsOf('f32');
export const MLA_PREFILL_MMA_BINDINGS = bindingsOf('vec4<f32>');
