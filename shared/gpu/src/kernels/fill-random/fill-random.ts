// Fills a weight buffer with seeded pseudo-random values in its stored dtype, on the GPU: synthetic weights of
// real model sizes for benchmarks, without reading or uploading gigabytes from the CPU.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import type { GpuTensor, WeightDtype } from '../weight-dtype.js';
import { defineKernel } from '../../runtime/define-kernel.js';

const WORKGROUP = 256;
const UNIFORMS = { words: 'u32', seed: 'u32', scale: 'f32', bias: 'f32', row_words: 'u32' } as const;
const BINDINGS = bindings([['w', 'array<u32>', 'read_write']], UNIFORMS);

const fillShader = defineKernel('fill_random', ({ dtype }: { readonly dtype: WeightDtype }): KernelShader => {
  const encode =
    dtype === 'f32' ? 'bitcast<u32>(value(2u * i))'
    : dtype === 'f16' ? 'pack2x16float(vec2<f32>(value(2u * i), value(2u * i + 1u)))'
    : '(bitcast<u32>(value(2u * i)) >> 16u) | (bitcast<u32>(value(2u * i + 1u)) & 0xffff0000u)';
  return BINDINGS.shader(`fill_random_${dtype}`, /* wgsl */ `
${BINDINGS.wgsl}

fn hash(x: u32) -> u32 {
  var h = (x * 0x9e3779b9u) ^ u.seed;
  h ^= h >> 16u; h *= 0x7feb352du; h ^= h >> 15u; h *= 0x846ca68bu; h ^= h >> 16u;
  return h;
}
fn value(j: u32) -> f32 {
  return (f32(hash(j) >> 8u) / 16777216.0 * 2.0 - 1.0) * u.scale + u.bias;
}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * u.row_words) + wg.x * ${WORKGROUP}u + lid;
  if (wg.x * ${WORKGROUP}u + lid >= u.row_words || i >= u.words) { return; }
  w[i] = ${encode};
}
`);
});

/** Values uniform in [bias - scale, bias + scale). */
export function fillRandom(t: GpuTensor, seed: number, scale: number, bias = 0): KernelProgram {
  const elements = t.shape.reduce((a, d) => a * d, 1);
  const words = t.dtype === 'f32' ? elements : Math.ceil(elements / 2);
  // a 2D grid keeps each dimension under the 65535-workgroup limit for multi-GB tensors
  const rowWords = WORKGROUP * 4096;
  return {
    shader: fillShader({ dtype: t.dtype }),
    buffers: BINDINGS.buffers({ w: t.buffer }),
    uniformValues: { words, seed: seed >>> 0, scale, bias, row_words: rowWords },
    workgroups: [Math.min(4096, Math.ceil(words / WORKGROUP)), Math.ceil(words / rowWords)],
  };
}
