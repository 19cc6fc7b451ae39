// Uploads a checkpoint's weights to the GPU in their stored dtype (bf16/f16 packed two per u32, f32 as is),
// one tensor (or one expert) at a time, so host memory holds at most one tensor's bytes. `onProgress` hears
// the bytes after each tensor (or expert group) and once more when all are up.
import type { Gpu } from '../runtime/runtime.js';
import type { ModelFolder } from '@latentwire/model';
import { expertWeights, readWeightSlice, weightSlice, type WeightSlice } from '@latentwire/model';
import { bytesToFloat64, type TensorDtype } from '@latentwire/model';
import { ModelLoadError } from '@latentwire/model';
import { type GpuTensor } from '../kernels/weight-dtype.js';
import { packWeights, type WeightDtype } from '@latentwire/model';
import { buildWeights, expertChunks, type BuildOptions, type WeightSource } from './build-weights.js';
import { copySharedExperts } from './shared-experts.js';
import { checkpointBytes, type OnLoadProgress } from './load-progress.js';
import type { ExpertChunk, ModelWeights } from './model-weights.js';

const DTYPES: Record<TensorDtype, WeightDtype> = { BF16: 'bf16', F16: 'f16', F32: 'f32' };

export function uploadCheckpoint(gpu: Gpu, folder: ModelFolder, onProgress?: OnLoadProgress, opts: BuildOptions = {}): ModelWeights {
  const buffers: GPUBuffer[] = [];
  const cfg = folder.config;
  const totalBytes = onProgress ? checkpointBytes(folder) : 0;
  let loadedBytes = 0;
  const loaded = (tensor: string, bytes: number): void => {
    loadedBytes += bytes;
    onProgress?.({ loadedBytes, totalBytes, tensor, done: false });
  };
  // tensors of `bytes` each in one new buffer, one after another: written one by one (one tensor's bytes in host
  // memory at a time) where each starts on a 4-byte boundary, as writes must, else joined here first
  // (`room` more tensors' bytes left after them, unwritten)
  const backToBack = (label: string, slices: readonly WeightSlice[], bytes: number, room = 0): GPUBuffer => {
    if (bytes % 4 !== 0) {
      const all = new Uint8Array((slices.length + room) * bytes);
      slices.forEach((s, i) => all.set(readWeightSlice(s), i * bytes));
      return gpu.upload(label, all);
    }
    const buffer = gpu.buffer(label, (slices.length + room) * bytes);
    slices.forEach((s, i) => gpu.write(buffer, readWeightSlice(s), i * bytes));
    return buffer;
  };
  const source: WeightSource = {
    buffers,
    tensor(name, shape, role) {
      const slice = weightSlice(folder.index, name, shape);
      let bytes = readWeightSlice(slice);
      let dtype = DTYPES[slice.dtype];
      if (role === 'router-bias' && dtype !== 'f32') {
        // the selection bias is tiny and compared against close scores: keep it exact in f32
        bytes = new Uint8Array(packWeights(bytesToFloat64(bytes, slice.dtype), 'f32').buffer);
        dtype = 'f32';
      }
      const buffer = gpu.upload(name, bytes);
      buffers.push(buffer);
      loaded(name, slice.end - slice.begin);
      return { buffer, dtype, shape };
    },
    stacked(names, rows, cols) {
      const slices = names.map((n) => weightSlice(folder.index, n, [rows, cols]));
      const dtype = slices[0]!.dtype;
      if (slices.some((s) => s.dtype !== dtype)) throw new ModelLoadError(`${names.join(', ')}: stacked weights mix dtypes`);
      const bytes = slices[0]!.end - slices[0]!.begin;
      const buffer = backToBack(names.join('+'), slices, bytes);
      buffers.push(buffer);
      names.forEach((n) => loaded(n, bytes));
      return { buffer, dtype: DTYPES[dtype], shape: [names.length * rows, cols] };
    },
    experts(layer, proj, rows, cols, extra) {
      const E = cfg.moe!.nRoutedExperts;
      const slices: WeightSlice[] = [];
      for (let e = 0; e < E; e++) slices.push(expertWeights(cfg, folder.index, folder.expertLayout, layer, e)[proj]);
      const dtype = slices[0]!.dtype;
      if (slices.some((s) => s.dtype !== dtype)) throw new ModelLoadError(`layer ${layer}: experts' ${proj}_proj weights mix dtypes`);
      const expertBytes = slices[0]!.end - slices[0]!.begin;
      const chunks: ExpertChunk[] = [];
      for (const c of expertChunks(E + extra, expertBytes, gpu.limits.maxStorageBufferBindingSize)) {
        const own = slices.slice(c.first, Math.min(E, c.first + c.count));
        const buffer = backToBack(`layers.${layer}.experts.${proj}[${c.first}..${c.first + c.count})`, own, expertBytes, c.count - own.length);
        buffers.push(buffer);
        loaded(`layers.${layer}.experts.${proj}`, own.length * expertBytes);
        const tensor: GpuTensor = { buffer, dtype: DTYPES[dtype], shape: [c.count, rows, cols] };
        chunks.push({ tensor, firstExpert: c.first, count: c.count });
      }
      return chunks;
    },
  };
  const weights = buildWeights(cfg, source, opts);
  copySharedExperts(gpu, weights.layers.map((l) => l.mlp));
  onProgress?.({ loadedBytes, totalBytes, tensor: '', done: true });
  return weights;
}
