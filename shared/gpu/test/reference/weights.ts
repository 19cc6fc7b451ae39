// The reference reads weights by their Hugging Face names through a plain getter, so it does not care whether
// they come from a safetensors folder, a random in-memory checkpoint, or a test's hand-made Map.
import type { MlaConfig } from '@latentwire/model';
import { SafetensorsIndex, tensorToFloat64 } from '@latentwire/model';

/** Returns a tensor's values (row-major, [out, in] for linear weights) or throws if it does not exist. */
export type WeightGetter = (name: string) => Float64Array;

export interface AttentionWeights {
  /** [heads·(nope+rope) × hidden] when q_lora_rank is null, else null. */
  readonly qProj: Float64Array | null;
  /** Query compression (q_lora_rank set): q_a_proj [qLora × hidden], its RMSNorm, q_b_proj [heads·(nope+rope) × qLora]. */
  readonly qAProj: Float64Array | null;
  readonly qALayernorm: Float64Array | null;
  readonly qBProj: Float64Array | null;
  /** [(kvLora + rope) × hidden]: the latent c and the shared k_pe in one projection. */
  readonly kvAProjWithMqa: Float64Array;
  readonly kvALayernorm: Float64Array;
  /** [heads·(nope + v) × kvLora]: per head, W_UK rows then W_UV rows. */
  readonly kvBProj: Float64Array;
  readonly oProj: Float64Array;
}

export interface MlpWeights {
  readonly gateProj: Float64Array;
  readonly upProj: Float64Array;
  readonly downProj: Float64Array;
}

export interface MoeWeights {
  /** Router [nRoutedExperts × hidden]. */
  readonly gate: Float64Array;
  /** V3 (noaux_tc) only: added to the scores for choosing experts, not for weighting them. */
  readonly eScoreCorrectionBias: Float64Array | null;
  readonly experts: readonly MlpWeights[];
  /** n_shared_experts experts fused into one MLP of width moe_intermediate_size·n_shared_experts. */
  readonly sharedExperts: MlpWeights | null;
}

export function layerName(layer: number, suffix: string): string {
  return `model.layers.${layer}.${suffix}`;
}

export function attentionWeights(cfg: MlaConfig, get: WeightGetter, layer: number): AttentionWeights {
  const w = (s: string) => get(layerName(layer, `self_attn.${s}.weight`));
  const compressed = cfg.qLoraRank !== null;
  return {
    qProj: compressed ? null : w('q_proj'),
    qAProj: compressed ? w('q_a_proj') : null,
    qALayernorm: compressed ? w('q_a_layernorm') : null,
    qBProj: compressed ? w('q_b_proj') : null,
    kvAProjWithMqa: w('kv_a_proj_with_mqa'),
    kvALayernorm: w('kv_a_layernorm'),
    kvBProj: w('kv_b_proj'),
    oProj: w('o_proj'),
  };
}

/** gate/up/down projections under `prefix` (e.g. `model.layers.0.mlp.` or `model.layers.1.mlp.experts.5.`). */
export function mlpWeights(get: WeightGetter, prefix: string): MlpWeights {
  return {
    gateProj: get(`${prefix}gate_proj.weight`),
    upProj: get(`${prefix}up_proj.weight`),
    downProj: get(`${prefix}down_proj.weight`),
  };
}

export function moeWeights(cfg: MlaConfig, get: WeightGetter, layer: number): MoeWeights {
  const moe = cfg.moe;
  if (!moe) throw new Error(`layer ${layer}: moeWeights on a dense model`);
  const mlp = (s: string) => layerName(layer, `mlp.${s}`);
  return {
    gate: get(mlp('gate.weight')),
    eScoreCorrectionBias: moe.topkMethod === 'noaux_tc' ? get(mlp('gate.e_score_correction_bias')) : null,
    experts: Array.from({ length: moe.nRoutedExperts }, (_, e) => mlpWeights(get, mlp(`experts.${e}.`))),
    sharedExperts: moe.nSharedExperts > 0 ? mlpWeights(get, mlp('shared_experts.')) : null,
  };
}

/** lm_head, or the embedding table when the config ties them (then lm_head.weight is absent from checkpoints). */
export function lmHeadWeight(cfg: MlaConfig, get: WeightGetter): Float64Array {
  return get(cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
}

/** A getter over a safetensors folder, decoding each tensor to float64 once. */
export function safetensorsWeights(index: SafetensorsIndex): WeightGetter {
  const cache = new Map<string, Float64Array>();
  return (name) => {
    let t = cache.get(name);
    if (!t) {
      t = tensorToFloat64(index.read(name));
      cache.set(name, t);
    }
    return t;
  };
}

/** A getter over an in-memory Map (e.g. what writeRandomCheckpoint returns). */
export function mapWeights(map: ReadonlyMap<string, Float64Array>): WeightGetter {
  return (name) => {
    const t = map.get(name);
    if (!t) throw new Error(`tensor ${name} is missing`);
    return t;
  };
}
