// Shader builders run for every dispatch (a decode step encodes ~600), and regenerating WGSL text each time
// costs string building, hashing in the pipeline cache and garbage. memoShader returns the same KernelShader
// object for the same arguments, so the runtime finds its pipeline by object identity.
import type { KernelShader } from './program.js';

export function memoShader<F extends (...args: any[]) => KernelShader>(build: F): F {
  const cache = new Map<string, KernelShader>();
  return ((...args: unknown[]) => {
    const key = JSON.stringify(args);
    let shader = cache.get(key);
    if (!shader) {
      shader = build(...args);
      cache.set(key, shader);
    }
    return shader;
  }) as F;
}
