// The shared experts as more experts of the routed stacks (MoeWeights.routedShared): DeepSeekMoE's shared MLP of
// S·I intermediate columns is S experts of I each (its gate and up rows, its down columns, cut at multiples of I),
// summed with weight 1. Copying them after the routed experts lets a decode batch's expert GEMMs run them too,
// where their own MLP's GEMMs at 16-64 rows take more time than their bytes need.
import type { BufferCopy, Gpu } from '../runtime/runtime.js';
import { weightBytes } from '@latentwire/model';
import { ModelLoadError } from '@latentwire/model';
import type { DenseWeights, ExpertChunk, MlpWeights, MoeWeights } from './model-weights.js';

/**
 * Whether copySharedExperts can copy a layer's shared experts of `I` columns each into its expert stacks: one dtype
 * for all of them, and a down row's I values whole 4-byte words (copies move words).
 */
export function canCopySharedExperts(shared: MlpWeights, stacks: Pick<MoeWeights, 'gate' | 'up' | 'down'>, I: number): boolean {
  const dtype = shared.gateUp.dtype;
  return shared.down.dtype === dtype && [stacks.gate, stacks.up, stacks.down].every((chunks) => chunks.every((c) => c.tensor.dtype === dtype))
    && weightBytes(dtype, I) % 4 === 0;
}

function slotOf(chunks: readonly ExpertChunk[], e: number): { chunk: ExpertChunk; index: number } {
  const chunk = chunks.find((c) => e >= c.firstExpert && e < c.firstExpert + c.count);
  if (!chunk) throw new ModelLoadError(`shared experts: no chunk holds expert ${e}`);
  return { chunk, index: e - chunk.firstExpert };
}

/**
 * Fills the room buildWeights left after each MoE layer's routed experts (routedShared > 0, which buildWeights
 * sets only where canCopySharedExperts holds: the checks below are its invariants) with the shared
 * experts, by copies on the GPU queue (after every write already made to the weights; none on a dry run). `mlps`:
 * the layers' MLPs.
 */
export function copySharedExperts(gpu: Gpu, mlps: readonly (DenseWeights | MoeWeights)[]): void {
  const copies: BufferCopy[] = [];
  const copy = (src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number) => copies.push({ src, srcOffset, dst, dstOffset, size });
  mlps.forEach((w, l) => {
    if (w.kind !== 'moe' || w.routedShared === 0) return;
    const S = w.routedShared;
    const shared = w.shared;
    const E = w.gate.reduce((n, c) => n + c.count, 0) - S;
    if (!shared) throw new ModelLoadError(`layer ${l}: room for ${S} shared experts but no shared experts`);
    const [, H] = shared.gateUp.shape as [number, number];
    const I = shared.down.shape[1]! / S;
    if (!canCopySharedExperts(shared, w, I)) throw new ModelLoadError(`layer ${l}: room for ${S} shared experts that cannot be copied (dtypes, or rows of half words)`);
    const dtype = shared.gateUp.dtype;
    const rowBytes = weightBytes(dtype, I);
    const expertBytes = weightBytes(dtype, I * H);
    for (let s = 0; s < S; s++) {
      // gate and up: I whole rows of the stacked [gate; up] weight, each into its own stack
      const gate = slotOf(w.gate, E + s), up = slotOf(w.up, E + s), down = slotOf(w.down, E + s);
      copy(shared.gateUp.buffer, s * expertBytes, gate.chunk.tensor.buffer, gate.index * expertBytes, expertBytes);
      copy(shared.gateUp.buffer, (S + s) * expertBytes, up.chunk.tensor.buffer, up.index * expertBytes, expertBytes);
      // down [H, S·I]: I columns of each of the H rows
      for (let h = 0; h < H; h++) {
        copy(shared.down.buffer, (h * S + s) * rowBytes, down.chunk.tensor.buffer, down.index * expertBytes + h * rowBytes, rowBytes);
      }
    }
  });
  gpu.copy(copies);
}
