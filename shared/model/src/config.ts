// config.json -> MlaConfig. The only place that reads raw Hugging Face config keys.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEEPSEEK_V2_DEFAULTS, DEEPSEEK_V3_DEFAULTS, type RawDefaults } from './config-defaults.js';
import { configSchema, parseOrThrow, type RawConfig } from './config-schema.js';
import { ModelLoadError } from './errors.js';
import { readJsonFile } from './json-file.js';
import type { MlaConfig, ModelType, MoeConfig } from './mla-config.js';
import { parseRope } from './rope-config.js';

const DEFAULTS: Record<ModelType, RawDefaults> = {
  deepseek_v2: DEEPSEEK_V2_DEFAULTS,
  deepseek_v3: DEEPSEEK_V3_DEFAULTS,
};
const SUPPORTED = Object.keys(DEFAULTS) as ModelType[];

/** Validates a parsed config.json (either spelling) and normalizes it. `source` names it in errors. */
export function normalizeConfig(raw: unknown, source = 'config.json'): MlaConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ModelLoadError(`${source}: expected a JSON object`);
  }
  const obj = raw as Record<string, unknown>;
  const modelType = obj['model_type'];
  if (typeof modelType !== 'string' || !(SUPPORTED as string[]).includes(modelType)) {
    throw new ModelLoadError(
      `${source}: model_type ${JSON.stringify(modelType)} is not supported; latentwire loads ${SUPPORTED.join(', ')}`,
    );
  }
  const mt = modelType as ModelType;
  const c = parseOrThrow(configSchema(DEFAULTS[mt]), obj, source);
  const bad = (key: string, why: string): never => {
    throw new ModelLoadError(`${source}: key "${key}" ${why}`);
  };
  if (c.qk_rope_head_dim % 2 !== 0) bad('qk_rope_head_dim', `must be even (RoPE rotates pairs of dimensions), got ${c.qk_rope_head_dim}`);
  const rope = parseRope(obj, c.max_position_embeddings, DEFAULTS[mt].rope_theta, source);
  const eosTokenIds = c.eos_token_id === null ? [] : Array.isArray(c.eos_token_id) ? c.eos_token_id : [c.eos_token_id];
  for (const id of eosTokenIds) if (id >= c.vocab_size) bad('eos_token_id', `${id} is outside the vocabulary (vocab_size ${c.vocab_size})`);
  if (c.bos_token_id !== null && c.bos_token_id >= c.vocab_size) {
    bad('bos_token_id', `${c.bos_token_id} is outside the vocabulary (vocab_size ${c.vocab_size})`);
  }
  return {
    modelType: mt,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    qLoraRank: c.q_lora_rank,
    kvLoraRank: c.kv_lora_rank,
    qkNopeHeadDim: c.qk_nope_head_dim,
    qkRopeHeadDim: c.qk_rope_head_dim,
    vHeadDim: c.v_head_dim,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: rope.ropeTheta,
    ropeScaling: rope.ropeScaling,
    maxPositionEmbeddings: c.max_position_embeddings,
    moe: normalizeMoe(c, bad),
    tieWordEmbeddings: c.tie_word_embeddings,
    bosTokenId: c.bos_token_id,
    eosTokenIds,
  };
}

/** null when the config describes a dense model (no routed experts or no top-k, as transformers documents). */
function normalizeMoe(c: RawConfig, bad: (key: string, why: string) => never): MoeConfig | null {
  const experts = c.n_routed_experts;
  const topk = c.num_experts_per_tok;
  if (experts === null || topk === null) return null;
  if (topk > experts) bad('num_experts_per_tok', `(${topk}) must not exceed n_routed_experts (${experts})`);
  // n_group None means no grouping: one group holding every expert.
  const nGroup = c.n_group ?? 1;
  const topkGroup = c.topk_group ?? nGroup;
  if (experts % nGroup !== 0) bad('n_group', `(${nGroup}) must divide n_routed_experts (${experts})`);
  if (topkGroup > nGroup) bad('topk_group', `(${topkGroup}) must not exceed n_group (${nGroup})`);
  if (c.topk_method !== 'greedy' && topk > topkGroup * (experts / nGroup)) {
    bad('num_experts_per_tok', `(${topk}) exceeds the ${topkGroup * (experts / nGroup)} experts in the topk_group (${topkGroup}) groups chosen per token`);
  }
  return {
    nRoutedExperts: experts,
    nSharedExperts: c.n_shared_experts ?? 0,
    numExpertsPerTok: topk,
    moeIntermediateSize: c.moe_intermediate_size,
    nGroup,
    topkGroup,
    topkMethod: c.topk_method,
    scoringFunc: c.scoring_func,
    normTopkProb: c.norm_topk_prob ?? false,
    routedScalingFactor: c.routed_scaling_factor,
    firstKDenseReplace: c.first_k_dense_replace,
    moeLayerFreq: c.moe_layer_freq,
  };
}

/** Reads and normalizes `dir/config.json`. */
export function loadConfig(dir: string): MlaConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new ModelLoadError(`config.json is missing from ${dir}`);
  return normalizeConfig(readJsonFile(file), file);
}
