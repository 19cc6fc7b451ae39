/** A WebGPU problem: no adapter, a missing feature, a shader that does not compile, a device lost. */
export class GpuError extends Error {
  override readonly name = 'GpuError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
