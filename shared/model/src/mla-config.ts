// The one normalized config every part of latentwire reads: a DeepSeek-V2/V3 model with Multi-head Latent
// Attention. Built once from a Hugging Face config.json by `normalizeConfig` (config.ts); never read raw keys
// elsewhere.

export type ModelType = 'deepseek_v2' | 'deepseek_v3';

/** How the router turns gate logits into expert choices (DeepSeekMoE). */
export type TopkMethod = 'greedy' | 'group_limited_greedy' | 'noaux_tc';
export type ScoringFunc = 'softmax' | 'sigmoid';

/** YaRN rope scaling as DeepSeek uses it (rope_scaling.type == "yarn"). */
export interface YarnScaling {
  readonly kind: 'yarn';
  readonly factor: number;
  readonly originalMaxPositionEmbeddings: number;
  readonly betaFast: number;
  readonly betaSlow: number;
  /** mscale / mscale_all_dim from the config; 0 when absent (transformers' default). */
  readonly mscale: number;
  readonly mscaleAllDim: number;
}
export interface DefaultRope {
  readonly kind: 'default';
}
export type RopeScaling = DefaultRope | YarnScaling;

export interface MoeConfig {
  readonly nRoutedExperts: number;
  readonly nSharedExperts: number;
  readonly numExpertsPerTok: number;
  readonly moeIntermediateSize: number;
  readonly nGroup: number;
  readonly topkGroup: number;
  readonly topkMethod: TopkMethod;
  readonly scoringFunc: ScoringFunc;
  readonly normTopkProb: boolean;
  readonly routedScalingFactor: number;
  /** Layers [0, firstKDenseReplace) use a dense MLP; MoE layers are those i >= it with i % moeLayerFreq == 0. */
  readonly firstKDenseReplace: number;
  readonly moeLayerFreq: number;
}

export interface MlaConfig {
  readonly modelType: ModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** null = no query compression (q_proj); else q_a_proj -> RMSNorm -> q_b_proj. */
  readonly qLoraRank: number | null;
  readonly kvLoraRank: number;
  readonly qkNopeHeadDim: number;
  readonly qkRopeHeadDim: number;
  readonly vHeadDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  readonly maxPositionEmbeddings: number;
  readonly moe: MoeConfig | null;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
}

/** Values per token and layer in the latent KV cache: normalized latent c then roped k_pe. */
export function latentRowWidth(cfg: MlaConfig): number {
  return cfg.kvLoraRank + cfg.qkRopeHeadDim;
}

export function qkHeadDim(cfg: MlaConfig): number {
  return cfg.qkNopeHeadDim + cfg.qkRopeHeadDim;
}

export function isMoeLayer(cfg: MlaConfig, layer: number): boolean {
  const moe = cfg.moe;
  return moe !== null && layer >= moe.firstKDenseReplace && layer % moe.moeLayerFreq === 0;
}
