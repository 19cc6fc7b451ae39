// SwiGLU's gating: y = silu(g) * u = g / (1 + e^-g) * u, elementwise in f32, for the dense MLP and the shared
// experts (DeepseekV2MLP / DeepseekV3MLP: down_proj(act_fn(gate_proj(x)) * up_proj(x))). g and u are column
// slices of rows: by default of one fused gate_up output [M, 2I] (gate columns [0, I), up columns [I, 2I)), or
// of two separate buffers; every operand has its own row stride and element offset. The output must not alias
// the inputs (WebGPU forbids a read_write binding overlapping read bindings of the same dispatch).
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';

const WORKGROUP = 256;
const BINDINGS = bindings([['g', 'array<f32>'], ['up', 'array<f32>'], ['y', 'array<f32>', 'read_write']], {
  rows: 'u32', cols: 'u32',
  g_stride: 'u32', g_offset: 'u32',
  u_stride: 'u32', u_offset: 'u32',
  y_stride: 'u32', y_offset: 'u32',
});

export const siluMulShader: KernelShader = BINDINGS.shader('silu_mul', /* wgsl */ `
${BINDINGS.wgsl}
//!include silu

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wg.x * ${WORKGROUP}u + lid;
  let r = wg.y;
  if (c >= u.cols || r >= u.rows) { return; }
  let gv = g[r * u.g_stride + u.g_offset + c];
  let uv = up[r * u.u_stride + u.u_offset + c];
  y[r * u.y_stride + u.y_offset + c] = silu_mul(gv, uv);
}
`);

export interface SiluMulArgs {
  /** Buffer holding the gate values (and the up values when `up` is omitted: the fused [rows, 2·cols] layout). */
  readonly gate: GPUBuffer;
  /** Separate buffer of up values; omit for the fused gate_up layout. */
  readonly up?: GPUBuffer;
  readonly y: GPUBuffer;
  readonly rows: number;
  /** Intermediate width I (columns of y). */
  readonly cols: number;
  /** Row strides and element offsets. Defaults: fused → gate stride 2·cols offset 0, up stride 2·cols offset cols;
   *  separate → stride cols, offset 0; y stride cols, offset 0. */
  readonly gateStride?: number;
  readonly gateOffset?: number;
  readonly upStride?: number;
  readonly upOffset?: number;
  readonly outStride?: number;
  readonly outOffset?: number;
}

export function siluMul(a: SiluMulArgs): KernelProgram {
  const fused = a.up === undefined;
  if (!Number.isInteger(a.rows) || !Number.isInteger(a.cols) || a.rows < 0 || a.cols < 0) {
    throw new RangeError(`siluMul: bad size ${a.rows}x${a.cols}`);
  }
  if (a.rows > 65535) throw new RangeError(`siluMul: ${a.rows} rows exceed one dispatch dimension (65535); split the call`);
  if (a.y === a.gate || a.y === a.up) throw new RangeError('siluMul: the output must not be an input buffer');
  const gateStride = a.gateStride ?? (fused ? 2 * a.cols : a.cols);
  return {
    shader: siluMulShader,
    buffers: BINDINGS.buffers({ g: a.gate, up: a.up ?? a.gate, y: a.y }),
    uniformValues: {
      rows: a.rows, cols: a.cols,
      g_stride: gateStride, g_offset: a.gateOffset ?? 0,
      u_stride: a.upStride ?? (fused ? gateStride : a.cols), u_offset: a.upOffset ?? (fused ? a.cols : 0),
      y_stride: a.outStride ?? a.cols, y_offset: a.outOffset ?? 0,
    },
    workgroups: [Math.ceil(a.cols / WORKGROUP), a.rows],
  };
}
