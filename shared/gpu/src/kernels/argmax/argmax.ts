// Row-wise argmax of f32 logits [rows, cols] -> u32 [rows]; ties go to the lowest index (as torch.argmax).
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';

const WORKGROUP = 128;
const UNIFORMS = { rows: 'u32', cols: 'u32', row_stride: 'u32', out_offset: 'u32' } as const;
const BINDINGS = bindings([['logits', 'array<f32>'], ['out', 'array<u32>', 'read_write']], UNIFORMS);

export const argmaxShader: KernelShader = BINDINGS.shader('argmax', /* wgsl */ `
${BINDINGS.wgsl}
var<workgroup> best_v: array<f32, ${WORKGROUP}>;
var<workgroup> best_i: array<u32, ${WORKGROUP}>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wg.x * u.row_stride;
  var v = -3.4e38;
  var i = 0xffffffffu;
  for (var c = lid; c < u.cols; c += ${WORKGROUP}u) {
    let x = logits[base + c];
    if (x > v) { v = x; i = c; }
  }
  best_v[lid] = v;
  best_i[lid] = i;
  workgroupBarrier();
  for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = best_v[lid + s];
      let oi = best_i[lid + s];
      if (ov > best_v[lid] || (ov == best_v[lid] && oi < best_i[lid])) { best_v[lid] = ov; best_i[lid] = oi; }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { out[u.out_offset + wg.x] = best_i[0]; }
}
`);

export function argmax(a: { logits: GPUBuffer; out: GPUBuffer; rows: number; cols: number; rowStride?: number; outOffset?: number }): KernelProgram {
  return {
    shader: argmaxShader,
    buffers: BINDINGS.buffers({ logits: a.logits, out: a.out }),
    uniformValues: { rows: a.rows, cols: a.cols, row_stride: a.rowStride ?? a.cols, out_offset: a.outOffset ?? 0 },
    workgroups: [a.rows],
  };
}
