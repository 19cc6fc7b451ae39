// Writes a complete random Hugging Face model folder (config.json + model.safetensors, no tokenizer) for tests,
// and returns the exact stored weights so a test can run the float64 reference on them.
//
// Scales keep every activation O(1): linear weights ~ N(0, 1/in), so a unit-RMS input gives unit-size outputs;
// attention scores and router logits come out O(1) (sharp enough to notice a wrong RoPE or a wrong expert, not
// saturated); norm weights ~ 1 ± 0.1; lm_head ~ N(0, 1/hidden) on a unit-RMS final state gives logits of std ~1,
// so the top-1/top-2 gap is not tiny.
import { seededRandom } from './seeded-random.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRESETS, type PresetConfig, type PresetName } from './random-presets.js';
import { storedValue, writeSafetensors, type TensorToWrite } from './safetensors-writer.js';

export { writeSafetensors, f16Bits, f16BitsToNumber, storedValue, type TensorToWrite } from './safetensors-writer.js';
export { PRESETS, type PresetConfig, type PresetName } from './random-presets.js';

export interface RandomCheckpointOptions {
  readonly preset: PresetName;
  /** PRNG seed (default 1): the same seed writes the same bytes. */
  readonly seed?: number;
  /** 'hub' (default): rope_theta + rope_scaling, as Hub checkpoints; 'transformers5': rope_parameters + head_dim. */
  readonly ropeSpelling?: 'hub' | 'transformers5';
  /** Changes to the preset; weights follow them (e.g. { tie_word_embeddings: true } drops lm_head.weight). */
  readonly overrides?: Partial<PresetConfig>;
  /** Keys merged into config.json last, without touching the weights (for config error tests). */
  readonly extraConfig?: Record<string, unknown>;
}

export interface RandomCheckpoint {
  readonly dir: string;
  /** Exactly what config.json holds. */
  readonly config: Record<string, unknown>;
  readonly preset: PresetConfig;
  /** Every tensor's stored values decoded to float64 (bf16-rounded; the V3 router bias is F32). */
  readonly weights: Map<string, Float64Array>;
  readonly shapes: Map<string, readonly number[]>;
}

interface PlannedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'BF16' | 'F32';
  /** How to draw each value: N(mean, std²), or uniform [lo, hi). */
  readonly draw: { normal: [mean: number, std: number] } | { uniform: [lo: number, hi: number] };
}

/** Every tensor of the checkpoint with its Hub name, shape, dtype and distribution. */
export function planTensors(p: PresetConfig): PlannedTensor[] {
  const out: PlannedTensor[] = [];
  const linear = (name: string, outDim: number, inDim: number) =>
    out.push({ name, shape: [outDim, inDim], dtype: 'BF16', draw: { normal: [0, 1 / Math.sqrt(inDim)] } });
  const norm = (name: string, dim: number) => out.push({ name, shape: [dim], dtype: 'BF16', draw: { normal: [1, 0.1] } });
  const mlp = (prefix: string, inter: number) => {
    linear(`${prefix}gate_proj.weight`, inter, p.hidden_size);
    linear(`${prefix}up_proj.weight`, inter, p.hidden_size);
    linear(`${prefix}down_proj.weight`, p.hidden_size, inter);
  };
  const h = p.hidden_size;
  const heads = p.num_attention_heads;
  const qkDim = p.qk_nope_head_dim + p.qk_rope_head_dim;
  // A tied table doubles as lm_head, so it gets lm_head's scale.
  const embedStd = p.tie_word_embeddings ? 1 / Math.sqrt(h) : 1;
  out.push({ name: 'model.embed_tokens.weight', shape: [p.vocab_size, h], dtype: 'BF16', draw: { normal: [0, embedStd] } });
  for (let l = 0; l < p.num_hidden_layers; l++) {
    const at = (s: string) => `model.layers.${l}.${s}`;
    norm(at('input_layernorm.weight'), h);
    if (p.q_lora_rank === null) linear(at('self_attn.q_proj.weight'), heads * qkDim, h);
    else {
      linear(at('self_attn.q_a_proj.weight'), p.q_lora_rank, h);
      norm(at('self_attn.q_a_layernorm.weight'), p.q_lora_rank);
      linear(at('self_attn.q_b_proj.weight'), heads * qkDim, p.q_lora_rank);
    }
    linear(at('self_attn.kv_a_proj_with_mqa.weight'), p.kv_lora_rank + p.qk_rope_head_dim, h);
    norm(at('self_attn.kv_a_layernorm.weight'), p.kv_lora_rank);
    linear(at('self_attn.kv_b_proj.weight'), heads * (p.qk_nope_head_dim + p.v_head_dim), p.kv_lora_rank);
    linear(at('self_attn.o_proj.weight'), h, heads * p.v_head_dim);
    norm(at('post_attention_layernorm.weight'), h);
    const moe = l >= p.first_k_dense_replace && l % p.moe_layer_freq === 0;
    if (!moe) {
      mlp(at('mlp.'), p.intermediate_size);
      continue;
    }
    linear(at('mlp.gate.weight'), p.n_routed_experts, h);
    // Stored in float32 as DeepSeek-V3 ships it; non-negative so a kept expert's biased score stays above the
    // 0 that masked experts get (where transformers' 0.0 fill and DeepSeek's -inf fill would differ).
    if (p.topk_method === 'noaux_tc') {
      out.push({ name: at('mlp.gate.e_score_correction_bias'), shape: [p.n_routed_experts], dtype: 'F32', draw: { uniform: [0, 0.3] } });
    }
    for (let e = 0; e < p.n_routed_experts; e++) mlp(at(`mlp.experts.${e}.`), p.moe_intermediate_size);
    if (p.n_shared_experts > 0) mlp(at('mlp.shared_experts.'), p.moe_intermediate_size * p.n_shared_experts);
  }
  norm('model.norm.weight', h);
  if (!p.tie_word_embeddings) linear('lm_head.weight', p.vocab_size, h);
  return out;
}

/** config.json contents for a preset, in the Hub or the transformers-5 spelling of RoPE settings. */
export function configJson(p: PresetConfig, spelling: 'hub' | 'transformers5'): Record<string, unknown> {
  const { rope_theta, rope_scaling, ...rest } = p;
  const common = {
    architectures: [p.model_type === 'deepseek_v2' ? 'DeepseekV2ForCausalLM' : 'DeepseekV3ForCausalLM'],
    ...rest,
    num_key_value_heads: p.num_attention_heads,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    initializer_range: 0.02,
    use_cache: true,
    bos_token_id: 0,
    eos_token_id: 1,
  };
  if (spelling === 'hub') return { ...common, rope_theta, rope_scaling, torch_dtype: 'bfloat16' };
  let ropeParameters: Record<string, unknown> = { rope_type: 'default', rope_theta };
  if (rope_scaling) {
    const { type, ...scaling } = rope_scaling;
    ropeParameters = { rope_type: type, rope_theta, ...scaling };
  }
  return {
    ...common,
    rope_parameters: ropeParameters,
    head_dim: p.qk_rope_head_dim,
    qk_head_dim: p.qk_nope_head_dim + p.qk_rope_head_dim,
    dtype: 'bfloat16',
  };
}

/** Writes `dir`/config.json and `dir`/model.safetensors for a preset. */
export function writeRandomCheckpoint(dir: string, options: RandomCheckpointOptions): RandomCheckpoint {
  const preset = { ...PRESETS[options.preset], ...options.overrides };
  const random = seededRandom(options.seed ?? 1);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()); // Box-Muller
  const tensors: TensorToWrite[] = [];
  const weights = new Map<string, Float64Array>();
  const shapes = new Map<string, readonly number[]>();
  for (const t of planTensors(preset)) {
    const count = t.shape.reduce((a, d) => a * d, 1);
    const values = new Float64Array(count).map(() => {
      const v = 'normal' in t.draw ? t.draw.normal[0] + t.draw.normal[1] * normal() : t.draw.uniform[0] + (t.draw.uniform[1] - t.draw.uniform[0]) * random();
      return storedValue(v, t.dtype);
    });
    tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, values });
    weights.set(t.name, values);
    shapes.set(t.name, t.shape);
  }
  const config = { ...configJson(preset, options.ropeSpelling ?? 'hub'), ...options.extraConfig };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return { dir, config, preset, weights, shapes };
}
