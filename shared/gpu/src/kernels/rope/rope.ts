// DeepSeek RoPE in place, on the interleaved pairs (2i, 2i+1) of a rope_dim-wide slice of each head:
// (a + ib) · attention_factor · e^{i·pos·inv_freq[i]}. Angles are computed in f32 as transformers does.
// Used for q_pe (per head, after the nope part) and k_pe (one "head" at column kv_lora_rank of a latent row).
// With `out`, the roped slice is written there instead (the decode step ropes q_pe straight into the
// absorbed query's tail), at its own strides.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings, type Bindings } from '../../runtime/bindings.js';

const WORKGROUP = 64;
const UNIFORMS = {
  rows: 'u32', heads: 'u32', half_dim: 'u32', row_stride: 'u32', head_stride: 'u32', offset: 'u32', attention_factor: 'f32',
  out_row_stride: 'u32', out_head_stride: 'u32', out_offset: 'u32',
} as const;

const IN_PLACE = bindings([['x', 'array<f32>', 'read_write'], ['positions', 'array<u32>'], ['inv_freq', 'array<f32>']], UNIFORMS);
const COPY = bindings([['x', 'array<f32>'], ['positions', 'array<u32>'], ['inv_freq', 'array<f32>'], ['y', 'array<f32>', 'read_write']], UNIFORMS);

function ropeShaderOf(B: Bindings, label: string): KernelShader {
  const outOfPlace = B === COPY;
  const dst = outOfPlace ? 'y' : 'x';
  return B.shader(label, /* wgsl */ `
${B.wgsl}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * ${WORKGROUP}u;
  let pairs_per_row = u.heads * u.half_dim;
  if (idx >= u.rows * pairs_per_row) { return; }
  let row = idx / pairs_per_row;
  let head = (idx % pairs_per_row) / u.half_dim;
  let i = idx % u.half_dim;
  let angle = f32(positions[row]) * inv_freq[i];
  let c = cos(angle) * u.attention_factor;
  let s = sin(angle) * u.attention_factor;
  let base = row * u.row_stride + head * u.head_stride + u.offset + 2u * i;
  let re = x[base];
  let im = x[base + 1u];
  let o = ${outOfPlace ? 'row * u.out_row_stride + head * u.out_head_stride + u.out_offset + 2u * i' : 'base'};
  ${dst}[o] = re * c - im * s;
  ${dst}[o + 1u] = re * s + im * c;
}
`);
}

export const ropeShader = ropeShaderOf(IN_PLACE, 'rope');
export const ropeCopyShader = ropeShaderOf(COPY, 'rope_copy');

export interface RopeArgs {
  readonly x: GPUBuffer;
  /** u32 position of each row. */
  readonly positions: GPUBuffer;
  /** f32 [ropeDim / 2] inverse frequencies (see rope-frequencies.ts). */
  readonly invFreq: GPUBuffer;
  readonly rows: number;
  readonly heads: number;
  readonly ropeDim: number;
  readonly rowStride: number;
  readonly headStride: number;
  /** Column of the rope slice inside each head. */
  readonly offset: number;
  readonly attentionFactor: number;
  /** Write the roped slice here (at out* strides, default the input's) instead of in place. */
  readonly out?: GPUBuffer;
  readonly outRowStride?: number;
  readonly outHeadStride?: number;
  readonly outOffset?: number;
}

export function rope(a: RopeArgs): KernelProgram {
  if (a.ropeDim % 2 !== 0) throw new RangeError(`rope: ropeDim ${a.ropeDim} must be even`);
  const total = a.rows * a.heads * (a.ropeDim / 2);
  const groups = Math.ceil(total / WORKGROUP);
  // split very large grids over y so no dimension exceeds the 65535-workgroup limit
  const x = Math.min(groups, 65535);
  return {
    shader: a.out ? ropeCopyShader : ropeShader,
    buffers: a.out
      ? COPY.buffers({ x: a.x, positions: a.positions, inv_freq: a.invFreq, y: a.out })
      : IN_PLACE.buffers({ x: a.x, positions: a.positions, inv_freq: a.invFreq }),
    uniformValues: {
      rows: a.rows, heads: a.heads, half_dim: a.ropeDim / 2, row_stride: a.rowStride, head_stride: a.headStride,
      offset: a.offset, attention_factor: a.attentionFactor,
      out_row_stride: a.outRowStride ?? a.rowStride, out_head_stride: a.outHeadStride ?? a.headStride, out_offset: a.outOffset ?? a.offset,
    },
    workgroups: [x, Math.ceil(groups / x)],
  };
}
