export { Gpu, STORAGE } from './runtime.js';
export type { GpuOptions } from './device.js';
export { GpuError } from './errors.js';
export type { KernelProgram, KernelShader, BufferBinding } from './program.js';
export { packUniforms, uniformStructWgsl, uniformByteSize } from './uniforms.js';
export type { UniformSpec, UniformType, UniformValues } from './uniforms.js';
export { Profiler } from './profiler.js';
export { memoShader } from './memo-shader.js';
