// Independent CPU float64 reference of DeepSeek-V2/V3 (MLA) for tests: the spec the GPU kernels and the whole
// GPU model are checked against. Plain loops, no caches, no absorption tricks.
//
// What was checked against which source (transformers 5.x unless noted):
// - models/deepseek_v2/modular_deepseek_v2.py + modeling_deepseek_v2.py, models/deepseek_v3/modular_deepseek_v3.py
//   + modeling_deepseek_v3.py, modeling_rope_utils.py (`_compute_yarn_parameters`), DeepSeek's Hub
//   modeling_deepseek.py (V2) for the points where transformers differs.
// - RMSNorm: x·rsqrt(mean(x²) + eps)·w (HF does the normalization in float32 even in a float64 model). Layer and
//   final norms use rms_norm_eps; q_a_layernorm and kv_a_layernorm are built with the default eps 1e-6 in both
//   HF and DeepSeek's code, whatever rms_norm_eps says (attention.ts, LATENT_NORM_EPS).
// - Attention (both versions identical): q = q_proj(x) or q_b_proj(q_a_layernorm(q_a_proj(x))), per head
//   [q_nope | q_pe]; kv_a_proj_with_mqa(x) = [c | k_pe]; kv_b_proj(kv_a_layernorm(c)) per head = [k_nope | v];
//   q_pe and the single shared k_pe are roped; scores = (q_nope·k_nope + q_pe·k_pe)·scale, causal softmax,
//   Σ p·v, heads concatenated, o_proj. No biases (attention_bias false on all DeepSeek checkpoints).
// - RoPE: dim = qk_rope_head_dim (transformers sets config.head_dim to it); pairs (2i, 2i+1) as complex
//   numbers (V2 `apply_rotary_emb`). V3's `apply_rotary_pos_emb_interleave` de-interleaves to [reals | imags]
//   before its rotate_half; same rotation, output permuted identically for q and k, so scores are identical.
//   The reference keeps the interleaved layout (also in the latent it reports).
// - YaRN (rope.ts): inv_freq ramp with floor/ceil correction range on original_max_position_embeddings;
//   cos/sin × get_mscale(f, mscale)/get_mscale(f, mscale_all_dim) (=1 when equal); softmax scale ×
//   get_mscale(f, mscale_all_dim)². transformers' V3 has the latter; its V2 lacked it until PR #47435 (DeepSeek's
//   own V2 code has it). The reference applies it to both.
// - MoE (moe-route.ts): V2 softmax + greedy/group_limited_greedy (group score = max), weights = p·routed_scaling
//   (norm_topk_prob ignored, as HF V2 does); V3 sigmoid + noaux_tc with e_score_correction_bias for choice only,
//   group score = sum of top-2, weights = unbiased sigmoid, renormalized if norm_topk_prob, × routed_scaling.
//   Shared experts: one MLP of width moe_intermediate_size·n_shared_experts, added unweighted.
// - Dense vs MoE layer: HF uses layer >= first_k_dense_replace; DeepSeek's code also requires
//   layer % moe_layer_freq == 0 (mla-config `isMoeLayer`); the same for every released checkpoint (freq 1).
// - lm_head = embed_tokens when tie_word_embeddings.
// - Fixture (models/tiny-deepseek-v2/reference.json): matched to < 1e-6 (prefill, stored with 6 decimals) and
//   < 6e-6 (step logits, stored with 5 decimals) only with `bf16InvFreq: true`: that model was loaded in bf16,
//   which rounded the rotary inv_freq buffer to bf16 before the float64 upcast. With exact frequencies the
//   logits differ by ~1e-3 (tokens unchanged). See rope.ts RopeOptions.
// - Checkpoint names: per-expert `mlp.experts.{e}.{gate,up,down}_proj.weight` (transformers 5 fuses experts in
//   memory but save_pretrained writes them back per expert; the tiny-deepseek-v2 fixture has per-expert names).
export * from './basic-ops.js';
export * from '@latentwire/testing';
export * from './rope.js';
export * from './weights.js';
export * from './attention.js';
export * from './mlp.js';
export * from './moe-route.js';
export * from './moe-layer.js';
export * from './forward.js';
export * from './generate.js';
export * from './sample.js';
export * from './logit-adjust.js';
