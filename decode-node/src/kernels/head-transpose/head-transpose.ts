// Load-time weight preparation: per head, a [rows, cols] block of a stored weight becomes [cols, rows] in the
// same dtype (values are moved, never rounded). Builds W_UVᵀ from kv_b_proj: head h's v rows
// (h·(nope + v) + nope + i, i < v) become out[h, j, i], so the decode step's W_UV matmul reads rows that are
// contiguous along its output. One thread per output word (two 16-bit values, or one f32).
import type { KernelProgram, KernelShader } from '@latentwire/gpu';
import { bindings } from '@latentwire/gpu';
import { weightLoadWgsl, type GpuTensor, type WeightDtype } from '@latentwire/gpu/kernels';
import { defineKernel } from '@latentwire/gpu';

const WG = 64;
const UNIFORMS = { heads: 'u32', rows: 'u32', cols: 'u32', head_row_stride: 'u32', row_offset: 'u32', words: 'u32', wg_x: 'u32' } as const;
const BINDINGS = bindings([['src', 'array<u32>'], ['dst', 'array<u32>', 'read_write']], UNIFORMS);

function pack(dtype: WeightDtype): string {
  switch (dtype) {
    case 'f32':
      return 'bitcast<u32>(value_at(e))';
    case 'bf16': // the values are bf16 already: their f32 bits' top halves
      return '(bitcast<u32>(value_at(e)) >> 16u) | (bitcast<u32>(value_at(e + 1u)) & 0xffff0000u)';
    case 'f16':
      return 'pack2x16float(vec2<f32>(value_at(e), value_at(e + 1u)))';
  }
}

function build_headTransposeShader({ dtype }: { readonly dtype: WeightDtype }): KernelShader {
  const perWord = dtype === 'f32' ? 1 : 2;
  return BINDINGS.shader(`head_transpose_${dtype}`, `${BINDINGS.wgsl}${weightLoadWgsl(dtype, 'src')}
// output element e = (h, j, i) of [heads, cols, rows] ← source element (h·head_row_stride + row_offset + i, j)
fn value_at(e: u32) -> f32 {
  let i = e % u.rows;
  let j = (e / u.rows) % u.cols;
  let h = e / (u.rows * u.cols);
  return weight_at((h * u.head_row_stride + u.row_offset + i) * u.cols + j);
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let w = gid.y * u.wg_x * ${WG}u + gid.x;
  if (w >= u.words) { return; }
  let e = w * ${perWord}u;
  dst[w] = ${pack(dtype)};
}`);
}

export interface HeadTransposeArgs {
  /** The stored weight, [heads · headRowStride, cols] row-major. */
  readonly src: GpuTensor;
  /** Receives [heads, cols, rows] in src's dtype. */
  readonly dst: GPUBuffer;
  readonly heads: number;
  /** Rows taken per head, starting at rowOffset within the head's headRowStride rows. */
  readonly rows: number;
  readonly cols: number;
  readonly headRowStride: number;
  readonly rowOffset: number;
}

/** Bytes the transposed copy takes. */
export function headTransposeBytes(dtype: WeightDtype, heads: number, rows: number, cols: number): number {
  return heads * rows * cols * (dtype === 'f32' ? 4 : 2);
}

export function headTranspose(a: HeadTransposeArgs): KernelProgram {
  const dtype = a.src.dtype;
  if (dtype !== 'f32' && a.rows % 2 !== 0) throw new RangeError(`headTranspose: ${a.rows} rows per head must be even for ${dtype}`);
  if (a.rowOffset + a.rows > a.headRowStride) throw new RangeError('headTranspose: the rows leave the head');
  if (a.src.shape[1] !== a.cols || a.src.shape[0]! < a.heads * a.headRowStride) {
    throw new RangeError(`headTranspose: source shape [${a.src.shape}] does not hold ${a.heads}×${a.headRowStride} rows of ${a.cols}`);
  }
  const words = (a.heads * a.rows * a.cols) / (dtype === 'f32' ? 1 : 2);
  const groups = Math.ceil(words / WG);
  const wgX = Math.min(groups, 65535);
  return {
    shader: headTransposeShader({ dtype }),
    buffers: BINDINGS.buffers({ src: a.src.buffer, dst: a.dst }),
    uniformValues: { heads: a.heads, rows: a.rows, cols: a.cols, head_row_stride: a.headRowStride, row_offset: a.rowOffset, words, wg_x: wgX },
    workgroups: [wgX, Math.ceil(groups / wgX)],
  };
}

export const headTransposeShader = defineKernel('head_transpose', build_headTransposeShader);
