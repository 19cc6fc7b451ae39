// DeepSeek RoPE in place, on the interleaved pairs (2i, 2i+1) of a rope_dim-wide slice of each head:
// (a + ib) · attention_factor · e^{i·pos·inv_freq[i]}. Angles are computed in f32 as transformers does.
// Used for q_pe (per head, after the nope part) and k_pe (one "head" at column kv_lora_rank of a latent row).
import type { KernelProgram, KernelShader } from '../../gpu/program.js';
import { uniformStructWgsl } from '../../gpu/uniforms.js';

const WORKGROUP = 64;
const UNIFORMS = {
  rows: 'u32', heads: 'u32', half_dim: 'u32', row_stride: 'u32', head_stride: 'u32', offset: 'u32', attention_factor: 'f32',
} as const;

export const ropeShader: KernelShader = {
  label: 'rope',
  uniforms: UNIFORMS,
  source: /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
${uniformStructWgsl(UNIFORMS, 3)}

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
  x[base] = re * c - im * s;
  x[base + 1u] = re * s + im * c;
}
`,
};

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
}

export function rope(a: RopeArgs): KernelProgram {
  if (a.ropeDim % 2 !== 0) throw new RangeError(`rope: ropeDim ${a.ropeDim} must be even`);
  const total = a.rows * a.heads * (a.ropeDim / 2);
  const groups = Math.ceil(total / WORKGROUP);
  // split very large grids over y so no dimension exceeds the 65535-workgroup limit
  const x = Math.min(groups, 65535);
  return {
    shader: ropeShader,
    buffers: [a.x, a.positions, a.invFreq],
    uniformValues: {
      rows: a.rows, heads: a.heads, half_dim: a.ropeDim / 2, row_stride: a.rowStride, head_stride: a.headStride,
      offset: a.offset, attention_factor: a.attentionFactor,
    },
    workgroups: [x, Math.ceil(groups / x)],
  };
}
