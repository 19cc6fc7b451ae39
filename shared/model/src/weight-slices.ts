// Byte ranges of individual weight matrices, so an uploader can copy exactly one expert's gate/up/down
// whatever the storage layout. A fused [E, 2I, H] tensor is row-major, so expert e's gate is the contiguous
// block of rows [e*2I, e*2I + I) and its up the next I rows; down_proj [E, H, I] gives expert e rows
// [e*H, (e+1)*H). Slices never require reading a whole fused tensor (15 GB per layer for DeepSeek-V3).
import { closeSync, openSync, readSync } from 'node:fs';
import { ModelLoadError } from './errors.js';
import type { MlaConfig } from './mla-config.js';
import type { SafetensorsIndex, TensorDtype } from './safetensors.js';
import type { ExpertLayout } from './tensor-manifest.js';
import { layerTensorNames } from './tensor-names.js';

export interface WeightSlice {
  /** The checkpoint tensor holding the bytes (a fused tensor for fused experts). */
  readonly tensor: string;
  readonly file: string;
  readonly dtype: TensorDtype;
  /** Shape of this slice alone: [out, in] for a linear. */
  readonly shape: readonly number[];
  /** Absolute byte range in `file`. */
  readonly begin: number;
  readonly end: number;
}

export interface ExpertWeights {
  readonly gate: WeightSlice;
  readonly up: WeightSlice;
  readonly down: WeightSlice;
}

/** The whole of one tensor as a slice. */
export function weightSlice(index: SafetensorsIndex, name: string, expectShape?: readonly number[]): WeightSlice {
  const t = index.info(name, expectShape);
  return { tensor: name, file: t.file, dtype: t.dtype, shape: t.shape, begin: t.begin, end: t.end };
}

/** Rows [rowStart, rowStart + rows) of a tensor viewed as a [totalRows, cols] matrix. */
function rowSlice(index: SafetensorsIndex, name: string, rowStart: number, rows: number, cols: number): WeightSlice {
  const t = index.info(name);
  const count = t.shape.reduce((a, d) => a * d, 1);
  const elemBytes = (t.end - t.begin) / count;
  const begin = t.begin + rowStart * cols * elemBytes;
  const end = begin + rows * cols * elemBytes;
  if (end > t.end) throw new ModelLoadError(`rows [${rowStart}, ${rowStart + rows}) lie outside tensor ${name} [${t.shape}]`);
  return { tensor: name, file: t.file, dtype: t.dtype, shape: [rows, cols], begin, end };
}

/** Routed expert `expert` of MoE layer `layer`: gate/up [I, H] and down [H, I], in either layout. */
export function expertWeights(cfg: MlaConfig, index: SafetensorsIndex, layout: ExpertLayout, layer: number, expert: number): ExpertWeights {
  const moe = cfg.moe;
  if (moe === null) throw new ModelLoadError('expertWeights: the model has no MoE layers');
  if (expert < 0 || expert >= moe.nRoutedExperts) throw new ModelLoadError(`expert ${expert} out of range [0, ${moe.nRoutedExperts})`);
  const H = cfg.hiddenSize;
  const I = moe.moeIntermediateSize;
  const n = layerTensorNames(layer);
  if (layout === 'per-expert') {
    const x = n.expert(expert);
    return { gate: weightSlice(index, x.gate, [I, H]), up: weightSlice(index, x.up, [I, H]), down: weightSlice(index, x.down, [H, I]) };
  }
  index.info(n.fusedGateUp, [moe.nRoutedExperts, 2 * I, H]);
  index.info(n.fusedDown, [moe.nRoutedExperts, H, I]);
  return {
    gate: rowSlice(index, n.fusedGateUp, expert * 2 * I, I, H),
    up: rowSlice(index, n.fusedGateUp, expert * 2 * I + I, I, H),
    down: rowSlice(index, n.fusedDown, expert * H, H, I),
  };
}

/** Reads a slice's bytes from disk (raw little-endian, stored dtype). */
export function readWeightSlice(slice: WeightSlice): Uint8Array {
  const bytes = new Uint8Array(slice.end - slice.begin);
  const fd = openSync(slice.file, 'r');
  try {
    let done = 0;
    while (done < bytes.length) {
      const n = readSync(fd, bytes, done, bytes.length - done, slice.begin + done);
      if (n <= 0) throw new ModelLoadError(`short read of ${slice.tensor} in ${slice.file}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}
