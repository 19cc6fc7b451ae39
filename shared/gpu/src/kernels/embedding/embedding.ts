// Embedding gather: y[t] = table[ids[t]] as f32, from the table's stored dtype. One workgroup per token.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { weightLoadWgsl, type GpuTensor } from '../weight-dtype.js';
import { type WeightDtype } from '@latentwire/model';
import { defineKernel } from '../../runtime/define-kernel.js';

const WORKGROUP = 128;
const UNIFORMS = { tokens: 'u32', hidden: 'u32', vocab: 'u32' } as const;
const BINDINGS = bindings([['ids', 'array<u32>'], ['table', 'array<u32>'], ['y', 'array<f32>', 'read_write']], UNIFORMS);

function build_embeddingShader({ dtype }: { readonly dtype: WeightDtype }): KernelShader {
  return BINDINGS.shader(`embedding_${dtype}`, /* wgsl */ `
${BINDINGS.wgsl}
${weightLoadWgsl(dtype, 'table')}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x;
  // ids are validated on the CPU before upload; clamp anyway so a bad id can never read out of bounds
  let id = min(ids[t], u.vocab - 1u);
  for (var c = lid; c < u.hidden; c += ${WORKGROUP}u) {
    y[t * u.hidden + c] = weight_at(id * u.hidden + c);
  }
}
`);
}

export interface EmbeddingArgs {
  readonly ids: GPUBuffer;
  readonly table: GpuTensor;
  readonly y: GPUBuffer;
  readonly tokens: number;
}

export function embedding(a: EmbeddingArgs): KernelProgram {
  const [vocab, hidden] = a.table.shape;
  if (a.table.shape.length !== 2 || !vocab || !hidden) throw new RangeError(`embedding: table shape [${a.table.shape}] is not [vocab, hidden]`);
  return {
    shader: embeddingShader({ dtype: a.table.dtype }),
    buffers: BINDINGS.buffers({ ids: a.ids, table: a.table.buffer, y: a.y }),
    uniformValues: { tokens: a.tokens, hidden, vocab },
    workgroups: [a.tokens],
  };
}

export const embeddingShader = defineKernel('embedding', build_embeddingShader);
