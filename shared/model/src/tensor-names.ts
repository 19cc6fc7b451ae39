// Hugging Face tensor names of DeepSeek-V2/V3 checkpoints, built in one place so no other file spells them.

export const EMBED_TOKENS = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

export interface ExpertTensorNames {
  readonly gate: string;
  readonly up: string;
  readonly down: string;
}

export interface LayerTensorNames {
  readonly inputNorm: string;
  readonly postAttentionNorm: string;
  /** Used when q_lora_rank is null. */
  readonly qProj: string;
  /** Used when q_lora_rank is set: q_a_proj -> q_a_layernorm -> q_b_proj. */
  readonly qAProj: string;
  readonly qANorm: string;
  readonly qBProj: string;
  readonly kvAProj: string;
  readonly kvANorm: string;
  readonly kvBProj: string;
  readonly oProj: string;
  /** Dense MLP layers. */
  readonly mlp: ExpertTensorNames;
  /** MoE router: gate weight and (noaux_tc only) the selection bias. */
  readonly router: string;
  readonly routerBias: string;
  readonly sharedExperts: ExpertTensorNames;
  /** Routed expert e stored as its own three matrices (DeepSeek's and transformers 4's layout). */
  expert(e: number): ExpertTensorNames;
  /** Routed experts fused per layer (transformers 5's in-memory layout): [E, 2I, H] gate then up, and [E, H, I]. */
  readonly fusedGateUp: string;
  readonly fusedDown: string;
}

function mlpNames(prefix: string): ExpertTensorNames {
  return { gate: `${prefix}.gate_proj.weight`, up: `${prefix}.up_proj.weight`, down: `${prefix}.down_proj.weight` };
}

export function layerTensorNames(layer: number): LayerTensorNames {
  const p = `model.layers.${layer}`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    postAttentionNorm: `${p}.post_attention_layernorm.weight`,
    qProj: `${p}.self_attn.q_proj.weight`,
    qAProj: `${p}.self_attn.q_a_proj.weight`,
    qANorm: `${p}.self_attn.q_a_layernorm.weight`,
    qBProj: `${p}.self_attn.q_b_proj.weight`,
    kvAProj: `${p}.self_attn.kv_a_proj_with_mqa.weight`,
    kvANorm: `${p}.self_attn.kv_a_layernorm.weight`,
    kvBProj: `${p}.self_attn.kv_b_proj.weight`,
    oProj: `${p}.self_attn.o_proj.weight`,
    mlp: mlpNames(`${p}.mlp`),
    router: `${p}.mlp.gate.weight`,
    routerBias: `${p}.mlp.gate.e_score_correction_bias`,
    sharedExperts: mlpNames(`${p}.mlp.shared_experts`),
    expert: (e) => mlpNames(`${p}.mlp.experts.${e}`),
    fusedGateUp: `${p}.mlp.experts.gate_up_proj`,
    fusedDown: `${p}.mlp.experts.down_proj`,
  };
}
