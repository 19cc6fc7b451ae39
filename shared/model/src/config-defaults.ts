// Values transformers itself assumes when a config.json leaves a key out, per model_type. A checkpoint whose
// config omits a key must load here exactly as transformers would load it, so these copy
// DeepseekV2Config / DeepseekV3Config (transformers 5) rather than picking "sensible" values.

/** Raw-key defaults; `null` is transformers' `None`. */
export interface RawDefaults {
  readonly vocab_size: number;
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly max_position_embeddings: number;
  readonly rms_norm_eps: number;
  readonly bos_token_id: number | null;
  readonly eos_token_id: number | null;
  readonly tie_word_embeddings: boolean;
  readonly q_lora_rank: number | null;
  readonly kv_lora_rank: number;
  readonly qk_nope_head_dim: number;
  readonly qk_rope_head_dim: number;
  readonly v_head_dim: number;
  readonly first_k_dense_replace: number;
  readonly moe_layer_freq: number;
  readonly n_routed_experts: number | null;
  readonly n_shared_experts: number | null;
  readonly num_experts_per_tok: number | null;
  readonly moe_intermediate_size: number;
  readonly n_group: number | null;
  readonly topk_group: number | null;
  readonly topk_method: string;
  readonly scoring_func: string;
  readonly norm_topk_prob: boolean;
  readonly routed_scaling_factor: number;
  readonly rope_theta: number;
}

export const DEEPSEEK_V2_DEFAULTS: RawDefaults = {
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  bos_token_id: 1,
  eos_token_id: 2,
  tie_word_embeddings: false,
  q_lora_rank: 1536,
  kv_lora_rank: 512,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  v_head_dim: 128,
  first_k_dense_replace: 0,
  n_routed_experts: 64,
  n_shared_experts: 2,
  // None: transformers documents this as "a dense model".
  num_experts_per_tok: null,
  moe_intermediate_size: 1407,
  n_group: null,
  topk_group: null,
  topk_method: 'greedy',
  norm_topk_prob: false,
  routed_scaling_factor: 1.0,
  rope_theta: 10000,
  // Not DeepseekV2Config keys: transformers' V2 code hard-wires softmax routing and an MoE block on every
  // layer from first_k_dense_replace on, which is what these values mean (and DeepSeek's own code defaults).
  scoring_func: 'softmax',
  moe_layer_freq: 1,
};

export const DEEPSEEK_V3_DEFAULTS: RawDefaults = {
  vocab_size: 129280,
  hidden_size: 7168,
  intermediate_size: 18432,
  num_hidden_layers: 61,
  num_attention_heads: 128,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-6,
  bos_token_id: 0,
  eos_token_id: 1,
  tie_word_embeddings: false,
  q_lora_rank: 1536,
  kv_lora_rank: 512,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  v_head_dim: 128,
  first_k_dense_replace: 3,
  n_routed_experts: 256,
  n_shared_experts: 1,
  num_experts_per_tok: 8,
  moe_intermediate_size: 2048,
  n_group: 8,
  topk_group: 4,
  norm_topk_prob: true,
  routed_scaling_factor: 2.5,
  rope_theta: 10000,
  // Not DeepseekV3Config keys: transformers' V3 router always scores with a sigmoid plus
  // e_score_correction_bias (DeepSeek's "noaux_tc") and puts MoE on every layer from first_k_dense_replace.
  topk_method: 'noaux_tc',
  scoring_func: 'sigmoid',
  moe_layer_freq: 1,
};
