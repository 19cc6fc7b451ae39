// Random weights of a real model's shapes, generated on the GPU (bf16), for benchmarks: nothing large is
// read from disk or crosses from the CPU. Scales keep activations O(1) through the layers.
import type { Gpu } from '../runtime/runtime.js';
import type { MlaConfig } from '@latentwire/model';
import { fillRandom } from '../kernels/fill-random/fill-random.js';
import { type GpuTensor } from '../kernels/weight-dtype.js';
import { weightBytes } from '@latentwire/model';
import type { KernelProgram } from '../runtime/program.js';
import { buildWeights, expertChunks, type BuildOptions, type WeightSource } from './build-weights.js';
import { copySharedExperts } from './shared-experts.js';
import type { ExpertChunk, ModelWeights } from './model-weights.js';

export async function syntheticWeights(gpu: Gpu, cfg: MlaConfig, seed = 1, opts: BuildOptions = {}): Promise<ModelWeights> {
  const buffers: GPUBuffer[] = [];
  const fills: KernelProgram[] = [];
  let next = seed;
  const make = (label: string, shape: number[], scale: number, bias: number, dtype: 'bf16' | 'f32' = 'bf16'): GpuTensor => {
    const elements = shape.reduce((a, d) => a * d, 1);
    const buffer = gpu.buffer(label, weightBytes(dtype, elements));
    buffers.push(buffer);
    const t: GpuTensor = { buffer, dtype, shape };
    fills.push(fillRandom(t, next++, scale, bias));
    return t;
  };
  const source: WeightSource = {
    buffers,
    tensor(name, shape, role) {
      const fanIn = shape[shape.length - 1]!;
      if (role === 'norm') return make(name, [...shape], 0.1, 1);
      if (role === 'router-bias') return make(name, [...shape], 0.01, 0, 'f32');
      if (role === 'embedding') return make(name, [...shape], 1, 0);
      return make(name, [...shape], Math.sqrt(3 / fanIn), 0);
    },
    stacked(names, rows, cols) {
      return make(names.join('+'), [names.length * rows, cols], Math.sqrt(3 / cols), 0);
    },
    experts(layer, proj, rows, cols, extra) {
      const E = cfg.moe!.nRoutedExperts + extra;
      const chunks: ExpertChunk[] = [];
      for (const c of expertChunks(E, weightBytes('bf16', rows * cols), gpu.limits.maxStorageBufferBindingSize)) {
        const tensor = make(`layers.${layer}.experts.${proj}[${c.first}]`, [c.count, rows, cols], Math.sqrt(3 / cols), 0);
        chunks.push({ tensor, firstExpert: c.first, count: c.count });
      }
      return chunks;
    },
  };
  const weights = buildWeights(cfg, source, opts);
  await gpu.run(fills);
  copySharedExperts(gpu, weights.layers.map((l) => l.mlp));
  await gpu.sync();
  return weights;
}
