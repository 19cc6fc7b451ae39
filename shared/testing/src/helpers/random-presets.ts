// Shapes of the random test checkpoints, as Hub-style config.json keys. Sizes are deliberately odd and mutually
// unaligned (hidden 72, 3 heads, q_lora 45, v ≠ nope, 6 rotated pairs, vocab 97, ...) so that no kernel can rely
// on powers of two or on nope == v; only qk_rope_head_dim must be even (RoPE rotates pairs).

export type PresetName = 'v2-qlora-yarn-grouped' | 'v3-noaux';

export interface YarnRopeScaling {
  readonly type: 'yarn';
  readonly factor: number;
  readonly original_max_position_embeddings: number;
  readonly beta_fast: number;
  readonly beta_slow: number;
  readonly mscale: number;
  readonly mscale_all_dim: number;
}

/** The config keys that decide weight shapes and the math; writeRandomCheckpoint adds the boilerplate. */
export interface PresetConfig {
  readonly model_type: 'deepseek_v2' | 'deepseek_v3';
  readonly vocab_size: number;
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly moe_intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly q_lora_rank: number | null;
  readonly kv_lora_rank: number;
  readonly qk_nope_head_dim: number;
  readonly qk_rope_head_dim: number;
  readonly v_head_dim: number;
  readonly n_routed_experts: number;
  readonly n_shared_experts: number;
  readonly num_experts_per_tok: number;
  readonly n_group: number;
  readonly topk_group: number;
  readonly topk_method: 'greedy' | 'group_limited_greedy' | 'noaux_tc';
  readonly scoring_func: 'softmax' | 'sigmoid';
  readonly norm_topk_prob: boolean;
  readonly routed_scaling_factor: number;
  readonly first_k_dense_replace: number;
  readonly moe_layer_freq: number;
  readonly rms_norm_eps: number;
  readonly rope_theta: number;
  readonly rope_scaling: YarnRopeScaling | null;
  readonly max_position_embeddings: number;
  readonly tie_word_embeddings: boolean;
}

export const PRESETS: Record<PresetName, PresetConfig> = {
  // DeepSeek-V2 style: query compression, YaRN with mscale ≠ mscale_all_dim (so the cos/sin factor is not 1
  // and the softmax scale correction is on), softmax routing limited to 2 of 3 groups, scaled weights.
  'v2-qlora-yarn-grouped': {
    model_type: 'deepseek_v2',
    vocab_size: 97,
    hidden_size: 72,
    intermediate_size: 99,
    moe_intermediate_size: 27,
    num_hidden_layers: 3,
    num_attention_heads: 3,
    q_lora_rank: 45,
    kv_lora_rank: 40,
    qk_nope_head_dim: 24,
    qk_rope_head_dim: 8,
    v_head_dim: 20,
    n_routed_experts: 6,
    n_shared_experts: 1,
    num_experts_per_tok: 2,
    n_group: 3,
    topk_group: 2,
    topk_method: 'group_limited_greedy',
    scoring_func: 'softmax',
    norm_topk_prob: false,
    routed_scaling_factor: 1.75,
    first_k_dense_replace: 1,
    moe_layer_freq: 1,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    // Correction range for 4 pairs: dims [0, 2), so the ramp is [0, 0.5, 1, 1] (all three regimes).
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 64, beta_fast: 32, beta_slow: 1, mscale: 0.9, mscale_all_dim: 0.707 },
    max_position_embeddings: 256,
    tie_word_embeddings: false,
  },
  // DeepSeek-V3 style: sigmoid scores, noaux_tc with a bias that changes choices, group score = top-2 sum,
  // renormalized top-3 weights times 2.5, 2 shared experts, v_head_dim > qk_nope_head_dim.
  'v3-noaux': {
    model_type: 'deepseek_v3',
    vocab_size: 103,
    hidden_size: 80,
    intermediate_size: 90,
    moe_intermediate_size: 30,
    num_hidden_layers: 3,
    num_attention_heads: 5,
    q_lora_rank: 33,
    kv_lora_rank: 36,
    qk_nope_head_dim: 20,
    qk_rope_head_dim: 12,
    v_head_dim: 28,
    n_routed_experts: 8,
    n_shared_experts: 2,
    num_experts_per_tok: 3,
    n_group: 4,
    topk_group: 2,
    topk_method: 'noaux_tc',
    scoring_func: 'sigmoid',
    norm_topk_prob: true,
    routed_scaling_factor: 2.5,
    first_k_dense_replace: 1,
    moe_layer_freq: 1,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    // As V3 ships: mscale == mscale_all_dim (cos/sin factor 1), softmax scale × (1 + 0.1·ln 8)².
    rope_scaling: { type: 'yarn', factor: 8, original_max_position_embeddings: 48, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
    max_position_embeddings: 384,
    tie_word_embeddings: false,
  },
};
