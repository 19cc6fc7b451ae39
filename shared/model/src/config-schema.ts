// The zod schema of the config.json keys latentwire reads. Absent keys take transformers' defaults for the
// model_type; present keys must have the right type and range. Unknown keys are ignored (configs carry many).
import { z } from 'zod';
import { ModelLoadError } from './errors.js';
import type { RawDefaults } from './config-defaults.js';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export function configSchema(d: RawDefaults) {
  return z.object({
    vocab_size: posInt.default(d.vocab_size),
    hidden_size: posInt.default(d.hidden_size),
    intermediate_size: posInt.default(d.intermediate_size),
    num_hidden_layers: posInt.default(d.num_hidden_layers),
    num_attention_heads: posInt.default(d.num_attention_heads),
    max_position_embeddings: posInt.default(d.max_position_embeddings),
    rms_norm_eps: z.number().positive().default(d.rms_norm_eps),
    bos_token_id: nonNegInt.nullable().default(d.bos_token_id),
    eos_token_id: z.union([nonNegInt, z.array(nonNegInt)]).nullable().default(d.eos_token_id),
    tie_word_embeddings: z.boolean().default(d.tie_word_embeddings),
    q_lora_rank: posInt.nullable().default(d.q_lora_rank),
    kv_lora_rank: posInt.default(d.kv_lora_rank),
    qk_nope_head_dim: posInt.default(d.qk_nope_head_dim),
    qk_rope_head_dim: posInt.default(d.qk_rope_head_dim),
    v_head_dim: posInt.default(d.v_head_dim),
    first_k_dense_replace: nonNegInt.default(d.first_k_dense_replace),
    moe_layer_freq: posInt.default(d.moe_layer_freq),
    n_routed_experts: posInt.nullable().default(d.n_routed_experts),
    n_shared_experts: nonNegInt.nullable().default(d.n_shared_experts),
    num_experts_per_tok: posInt.nullable().default(d.num_experts_per_tok),
    moe_intermediate_size: posInt.default(d.moe_intermediate_size),
    n_group: posInt.nullable().default(d.n_group),
    topk_group: posInt.nullable().default(d.topk_group),
    topk_method: z
      .enum(['greedy', 'group_limited_greedy', 'noaux_tc'], { error: 'must be "greedy", "group_limited_greedy" or "noaux_tc"' })
      .default(d.topk_method as 'greedy'),
    scoring_func: z
      .enum(['softmax', 'sigmoid'], { error: 'must be "softmax" or "sigmoid"' })
      .default(d.scoring_func as 'softmax'),
    // transformers writes None for V2 configs that never set it; None behaves as false.
    norm_topk_prob: z.boolean().nullable().default(d.norm_topk_prob),
    routed_scaling_factor: z.number().positive().default(d.routed_scaling_factor),
    // Architecture switches latentwire does not implement: refuse them instead of computing something else.
    hidden_act: z.literal('silu', { error: 'must be "silu" (the only activation latentwire implements)' }).default('silu'),
    attention_bias: z.literal(false, { error: 'must be false (attention projection biases are not supported)' }).default(false),
    mlp_bias: z.literal(false, { error: 'must be false (MLP biases are not supported)' }).default(false),
    rope_interleave: z
      .literal(true, { error: 'must be true (DeepSeek rotates interleaved pairs; the half-split form is not supported)' })
      .default(true),
  });
}

export type RawConfig = z.infer<ReturnType<typeof configSchema>>;

/** Parses with `schema`, turning zod issues into one ModelLoadError naming each bad key and its value. */
export function parseOrThrow<S extends z.ZodType>(schema: S, raw: unknown, source: string, keyPrefix = ''): z.infer<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const problems = r.error.issues.map((issue) => {
    const key = keyPrefix + issue.path.map(String).join('.');
    const got = valueAt(raw, issue.path);
    return `key "${key}" ${issue.message}${got === undefined ? '' : ` (got ${JSON.stringify(got)})`}`;
  });
  throw new ModelLoadError(`${source}: ${problems.join('; ')}`);
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}
