// The anatomy every kernel follows: a launcher validates its inputs and returns a KernelProgram (pure data);
// the runtime compiles, caches, binds and dispatches it. Kernel code never touches the GPUDevice.
import type { UniformSpec, UniformValues } from './uniforms.js';
import { GpuError } from './errors.js';

export type BindingAccess = 'read' | 'read_write';

/** The compiled part of a kernel: what changes the shader. Cached by `label` + source text. */
export interface KernelShader {
  readonly label: string;
  readonly source: string;
  /** Binding i of the program's `buffers` is declared at binding i; uniforms come after them. */
  readonly uniforms?: UniformSpec;
  /** Storage names in binding order, from the kernel's `bindings()` declaration (bindings.ts). */
  readonly bindings?: readonly string[];
}

export interface BufferBinding {
  readonly buffer: GPUBuffer;
  readonly offset?: number;
  readonly size?: number;
}

/** The binding when `b` is a BufferBinding, null when it is a whole buffer. */
export function asBinding(b: GPUBuffer | BufferBinding): BufferBinding | null {
  return 'buffer' in b && !(b instanceof GPUBuffer) ? (b as BufferBinding) : null;
}

/** One dispatch: shader + buffers + uniform values + workgroup counts. */
export interface KernelProgram<S extends UniformSpec = UniformSpec> {
  readonly shader: KernelShader & { readonly uniforms?: S };
  readonly buffers: readonly (GPUBuffer | BufferBinding)[];
  readonly uniformValues?: UniformValues<S>;
  readonly workgroups: readonly [number, number?, number?];
}

/** Throws where the program's workgroup counts pass the device's limit per dimension (the dispatch would fail). */
export function checkWorkgroupLimit(p: KernelProgram, maxDim: number): void {
  const [x, y = 1, z = 1] = p.workgroups;
  if (x > maxDim || y > maxDim || z > maxDim) {
    throw new GpuError(`kernel ${p.shader.label}: dispatch ${x}x${y}x${z} exceeds ${maxDim} workgroups per dimension`);
  }
}
