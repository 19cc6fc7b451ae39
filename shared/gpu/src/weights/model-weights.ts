// The model's weights as they live on the GPU, in their stored dtype. One structure whether they came from a
// checkpoint (upload-checkpoint.ts) or were synthesized for a benchmark (synthetic-weights.ts).
import type { GpuTensor } from '../kernels/weight-dtype.js';

/** A run of consecutive routed experts stacked in one buffer: [count, rows, cols], within one binding. */
export interface ExpertChunk {
  readonly tensor: GpuTensor;
  readonly firstExpert: number;
  readonly count: number;
}

export interface MlpWeights {
  /** gate_proj and up_proj stacked, [2·inter, hidden]: one GEMM (or GEMV) writes each row's gate ‖ up. */
  readonly gateUp: GpuTensor;
  readonly down: GpuTensor;
}

export interface MoeWeights {
  readonly kind: 'moe';
  readonly router: GpuTensor;
  /** noaux_tc's e_score_correction_bias (f32), else null. */
  readonly routerBias: GpuTensor | null;
  readonly gate: readonly ExpertChunk[];
  readonly up: readonly ExpertChunk[];
  readonly down: readonly ExpertChunk[];
  readonly shared: MlpWeights | null;
  /**
   * The shared experts' count when gate, up and down also hold them as experts n_routed_experts.. (each
   * moe_intermediate_size wide: shared expert s is rows s·I.. of the shared gate and up, columns s·I.. of the shared
   * down), for moePrograms to run them with the routed ones (BuildOptions.routeSharedExperts); else 0.
   */
  readonly routedShared: number;
}

export interface DenseWeights extends MlpWeights {
  readonly kind: 'dense';
}

export type QueryWeights =
  | { readonly kind: 'direct'; readonly qProj: GpuTensor }
  | { readonly kind: 'lora'; readonly qAProj: GpuTensor; readonly qANorm: GpuTensor; readonly qBProj: GpuTensor };

export interface LayerWeights {
  readonly inputNorm: GpuTensor;
  readonly query: QueryWeights;
  readonly kvAProj: GpuTensor;
  readonly kvANorm: GpuTensor;
  readonly kvBProj: GpuTensor;
  readonly oProj: GpuTensor;
  readonly postAttentionNorm: GpuTensor;
  readonly mlp: DenseWeights | MoeWeights;
}

export interface ModelWeights {
  readonly embed: GpuTensor;
  readonly layers: readonly LayerWeights[];
  readonly finalNorm: GpuTensor;
  /** lm_head, or the embedding table when tie_word_embeddings. */
  readonly lmHead: GpuTensor;
  /** Every buffer, for release. */
  readonly buffers: readonly GPUBuffer[];
  readonly bytes: number;
}
