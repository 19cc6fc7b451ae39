// Inputs of the MoE benches (moe.ts, moe-residency.ts): synthetic expert weights made on the GPU, and routings.
import type { Gpu, KernelProgram } from '@latentwire/gpu';
import { fillRandom, type MoeDims, type MoeExpertChunk } from '@latentwire/gpu/kernels';
import { expertChunks } from '@latentwire/gpu/weights';

/** Experts `rows × cols` of 16-bit weights in chunks that each fit one storage binding (as the model loads them), filled on the GPU. */
export function syntheticExperts(gpu: Gpu, label: string, E: number, rows: number, cols: number, seed: number, fills: KernelProgram[], dtype: 'bf16' | 'f16'): MoeExpertChunk[] {
  return expertChunks(E, rows * cols * 2, gpu.limits.maxStorageBufferBindingSize).map(({ first, count }) => {
    const tensor = { buffer: gpu.buffer(`${label}[${first}]`, count * rows * cols * 2), dtype, shape: [count, rows, cols] };
    fills.push(fillRandom(tensor, seed + first, Math.sqrt(3 / cols), 0));
    return { tensor, firstExpert: first, count };
  });
}

/** Each token's k distinct experts and their weights, from a seeded LCG. */
export function randomRouting(tokens: number, dims: MoeDims, seed: number): { ids: Uint32Array; weights: Float32Array } {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const ids = new Uint32Array(tokens * dims.topK), weights = new Float32Array(tokens * dims.topK);
  for (let t = 0; t < tokens; t++) {
    const pool = Array.from({ length: dims.nExperts }, (_, e) => e);
    for (let j = 0; j < dims.topK; j++) {
      ids[t * dims.topK + j] = pool.splice(Math.floor(next() * pool.length), 1)[0]!;
      weights[t * dims.topK + j] = 0.1 + next();
    }
  }
  return { ids, weights };
}

