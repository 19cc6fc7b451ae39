// The whole model: embedding → layers (pre-norm MLA attention, pre-norm dense or MoE MLP, residuals) →
// final norm → lm_head. One full forward over the sequence, positions 0..T-1, no cache.
import { isMoeLayer, type MlaConfig } from '@latentwire/model';
import { add, embedding, linear, rmsNorm, row } from './basic-ops.js';
import { mlaAttentionNaive } from './attention.js';
import { siluMlp } from './mlp.js';
import { moeLayer } from './moe-layer.js';
import type { RouteChoice } from './moe-route.js';
import type { RopeOptions } from './rope.js';
import { attentionWeights, layerName, lmHeadWeight, mlpWeights, moeWeights, type WeightGetter } from './weights.js';

export interface ReferenceOutput {
  /** Logits per position, each [vocab]. */
  readonly logits: Float64Array[];
  /** Per layer, [T × (kv_lora_rank + qk_rope_head_dim)]: normalized c then roped k_pe, row-major by token. */
  readonly latent: Float64Array[];
  /** Per layer, the post_attention_layernorm output fed to the MLP/MoE, [T × hidden]. */
  readonly mlpInputs: Float64Array[];
  /** Per layer, each token's routing (null for dense layers). */
  readonly routes: (RouteChoice[] | null)[];
}

export type ReferenceOptions = RopeOptions;

export function referenceForward(
  cfg: MlaConfig,
  get: WeightGetter,
  ids: readonly number[],
  options: ReferenceOptions = {},
): ReferenceOutput {
  const hidden = cfg.hiddenSize;
  const eps = cfg.rmsNormEps;
  const positions = ids.map((_, i) => i);
  const latent: Float64Array[] = [];
  const mlpInputs: Float64Array[] = [];
  const routes: (RouteChoice[] | null)[] = [];

  let h = embedding(get('model.embed_tokens.weight'), hidden, ids);
  for (let l = 0; l < cfg.numLayers; l++) {
    const attnIn = rmsNorm(h, get(layerName(l, 'input_layernorm.weight')), eps);
    const attn = mlaAttentionNaive(cfg, attentionWeights(cfg, get, l), attnIn, positions, options);
    latent.push(attn.latent);
    h = add(h, attn.output);

    const mlpIn = rmsNorm(h, get(layerName(l, 'post_attention_layernorm.weight')), eps);
    mlpInputs.push(mlpIn);
    if (isMoeLayer(cfg, l)) {
      const moe = moeLayer(cfg, moeWeights(cfg, get, l), mlpIn);
      routes.push(moe.routes);
      h = add(h, moe.output);
    } else {
      routes.push(null);
      h = add(h, siluMlp(mlpIn, mlpWeights(get, layerName(l, 'mlp.')), hidden));
    }
  }

  const final = rmsNorm(h, get('model.norm.weight'), eps);
  const all = linear(final, lmHeadWeight(cfg, get), hidden);
  const logits = ids.map((_, t) => row(all, cfg.vocabSize, t).slice());
  return { logits, latent, mlpInputs, routes };
}
