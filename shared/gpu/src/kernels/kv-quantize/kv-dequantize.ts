// The inverse of kv-quantize, for tests and debugging: tokens tokenOffset .. tokenOffset + rows of a
// sequence's pages back to dense f32 rows (r + rope values each, fp8_e4m3 latents times their scale).
// Values are written as bit patterns, so NaN payloads and subnormals come back untouched.
import type { BufferBinding, KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import type { KvDtype } from '@latentwire/protocol';
import { latentKvLayout, type LatentKvLayout } from '@latentwire/protocol';
import { sectionLoadWgsl } from './kv-element-wgsl.js';
import { layoutUniforms, rowGrid } from './kv-grid.js';
import { defineKernel } from '../../runtime/define-kernel.js';

const WORKGROUP = 64;
const UNIFORMS = {
  rows: 'u32', wg_x: 'u32', out_offset: 'u32', out_stride: 'u32', token_offset: 'u32', page_size: 'u32', rank: 'u32',
  rope: 'u32', latent_words: 'u32', rope_words: 'u32', row_words: 'u32', page_words: 'u32', scales_word: 'u32', cache_offset: 'u32',
} as const;
// out: f32 rows, written as bits
const BINDINGS = bindings([['cache', 'array<u32>'], ['page_ids', 'array<u32>'], ['out', 'array<u32>', 'read_write']], UNIFORMS);

function build_kvDequantizeShader({ dtype }: { readonly dtype: KvDtype }): KernelShader {
  const l = latentKvLayout({ kvLoraRank: 1, ropeDim: 1, pageSize: 1, dtype }); // element types only
  const scaled = l.scales.kind !== 'none';
  return BINDINGS.shader(`kv_dequantize_${dtype}`, /* wgsl */ `
${BINDINGS.wgsl}
//!include fp8-decode
${sectionLoadWgsl(l.latentType, 'load_latent')}
${sectionLoadWgsl(l.ropeType, 'load_rope')}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * u.wg_x + wg.x;
  if (row >= u.rows) { return; }
  let tok = u.token_offset + row;
  let base = u.cache_offset + page_ids[tok / u.page_size] * u.page_words;
  let slot = tok % u.page_size;
  let src = base + slot * u.row_words;
  let scale = ${scaled ? 'bitcast<f32>(cache[base + u.scales_word + slot])' : '1.0'};
  let o = u.out_offset + row * u.out_stride;
  for (var i = lid; i < u.rank; i += ${WORKGROUP}u) { out[o + i] = load_latent(src, i, scale); }
  for (var i = lid; i < u.rope; i += ${WORKGROUP}u) { out[o + u.rank + i] = load_rope(src + u.latent_words, i, 1.0); }
}
`);
}

export interface KvDequantizeArgs {
  readonly layout: LatentKvLayout;
  readonly cache: GPUBuffer | BufferBinding;
  readonly cacheByteOffset?: number;
  readonly pageIds: GPUBuffer | BufferBinding;
  readonly tokenOffset?: number;
  readonly rows: number;
  /** f32 output; row t at element outOffset + t * outStride (default stride r + rope). */
  readonly out: GPUBuffer | BufferBinding;
  readonly outOffset?: number;
  readonly outStride?: number;
}

export function kvDequantize(a: KvDequantizeArgs): KernelProgram {
  const l = a.layout;
  const width = l.kvLoraRank + l.ropeDim;
  const outStride = a.outStride ?? width;
  if (outStride < width) throw new RangeError(`kvDequantize: outStride ${outStride} < row width ${width}`);
  const grid = rowGrid(a.rows, 'kvDequantize');
  return {
    shader: kvDequantizeShader({ dtype: l.dtype }),
    buffers: BINDINGS.buffers({ cache: a.cache, page_ids: a.pageIds, out: a.out }),
    uniformValues: {
      rows: a.rows, wg_x: grid.wgX, out_offset: a.outOffset ?? 0, out_stride: outStride,
      ...layoutUniforms(l, a.tokenOffset ?? 0, a.cacheByteOffset ?? 0, 'kvDequantize'),
    },
    workgroups: grid.workgroups,
  };
}

export const kvDequantizeShader = defineKernel('kv_dequantize', build_kvDequantizeShader);
