// Which tensors a config requires, with exact names and shapes ([out, in] for linears, as nn.Linear stores
// them), and a check that a checkpoint has all of them before anything is uploaded.
import { ModelLoadError } from './errors.js';
import { isMoeLayer, type MlaConfig } from './mla-config.js';
import type { SafetensorsIndex } from './safetensors.js';
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, layerTensorNames, type ExpertTensorNames } from './tensor-names.js';

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** How routed experts are stored: one tensor per expert and projection, or two fused 3-D tensors per layer. */
export type ExpertLayout = 'per-expert' | 'fused';

function mlp(n: ExpertTensorNames, hidden: number, inter: number): TensorSpec[] {
  return [
    { name: n.gate, shape: [inter, hidden] },
    { name: n.up, shape: [inter, hidden] },
    { name: n.down, shape: [hidden, inter] },
  ];
}

export function attentionTensors(cfg: MlaConfig, layer: number): TensorSpec[] {
  const n = layerTensorNames(layer);
  const H = cfg.hiddenSize;
  const qOut = cfg.numHeads * (cfg.qkNopeHeadDim + cfg.qkRopeHeadDim);
  const q: TensorSpec[] =
    cfg.qLoraRank === null
      ? [{ name: n.qProj, shape: [qOut, H] }]
      : [
          { name: n.qAProj, shape: [cfg.qLoraRank, H] },
          { name: n.qANorm, shape: [cfg.qLoraRank] },
          { name: n.qBProj, shape: [qOut, cfg.qLoraRank] },
        ];
  return [
    ...q,
    // Rows [0, kv_lora_rank) are the latent c, the last qk_rope_head_dim rows the shared k_pe.
    { name: n.kvAProj, shape: [cfg.kvLoraRank + cfg.qkRopeHeadDim, H] },
    { name: n.kvANorm, shape: [cfg.kvLoraRank] },
    // Per head: qk_nope_head_dim rows of k_nope, then v_head_dim rows of v.
    { name: n.kvBProj, shape: [cfg.numHeads * (cfg.qkNopeHeadDim + cfg.vHeadDim), cfg.kvLoraRank] },
    { name: n.oProj, shape: [H, cfg.numHeads * cfg.vHeadDim] },
  ];
}

export function mlpTensors(cfg: MlaConfig, layer: number, layout: ExpertLayout): TensorSpec[] {
  const n = layerTensorNames(layer);
  const H = cfg.hiddenSize;
  const moe = cfg.moe;
  if (moe === null || !isMoeLayer(cfg, layer)) return mlp(n.mlp, H, cfg.intermediateSize);
  const E = moe.nRoutedExperts;
  const I = moe.moeIntermediateSize;
  const out: TensorSpec[] = [{ name: n.router, shape: [E, H] }];
  if (moe.topkMethod === 'noaux_tc') out.push({ name: n.routerBias, shape: [E] });
  if (layout === 'fused') {
    out.push({ name: n.fusedGateUp, shape: [E, 2 * I, H] }, { name: n.fusedDown, shape: [E, H, I] });
  } else {
    for (let e = 0; e < E; e++) out.push(...mlp(n.expert(e), H, I));
  }
  if (moe.nSharedExperts > 0) out.push(...mlp(n.sharedExperts, H, I * moe.nSharedExperts));
  return out;
}

export function layerTensors(cfg: MlaConfig, layer: number, layout: ExpertLayout): TensorSpec[] {
  const n = layerTensorNames(layer);
  return [
    { name: n.inputNorm, shape: [cfg.hiddenSize] },
    ...attentionTensors(cfg, layer),
    { name: n.postAttentionNorm, shape: [cfg.hiddenSize] },
    ...mlpTensors(cfg, layer, layout),
  ];
}

/** Every tensor the model needs, in forward order. Extra checkpoint tensors (e.g. V3's MTP layer) are ignored. */
export function tensorManifest(cfg: MlaConfig, layout: ExpertLayout = 'per-expert'): TensorSpec[] {
  const out: TensorSpec[] = [{ name: EMBED_TOKENS, shape: [cfg.vocabSize, cfg.hiddenSize] }];
  for (let l = 0; l < cfg.numLayers; l++) out.push(...layerTensors(cfg, l, layout));
  out.push({ name: FINAL_NORM, shape: [cfg.hiddenSize] });
  // Tied models reuse embed_tokens as the output projection.
  if (!cfg.tieWordEmbeddings) out.push({ name: LM_HEAD, shape: [cfg.vocabSize, cfg.hiddenSize] });
  return out;
}

/** Looks at the first MoE layer to tell how this checkpoint stores routed experts. */
export function detectExpertLayout(cfg: MlaConfig, index: SafetensorsIndex): ExpertLayout {
  for (let l = 0; l < cfg.numLayers; l++) {
    if (isMoeLayer(cfg, l)) return index.has(layerTensorNames(l).fusedGateUp) ? 'fused' : 'per-expert';
  }
  return 'per-expert';
}

export interface CheckpointLayout {
  readonly expertLayout: ExpertLayout;
  readonly tensors: readonly TensorSpec[];
}

/** Checks every required tensor exists with its shape; the error lists each missing or misshapen tensor. */
export function validateCheckpoint(cfg: MlaConfig, index: SafetensorsIndex): CheckpointLayout {
  const expertLayout = detectExpertLayout(cfg, index);
  const tensors = tensorManifest(cfg, expertLayout);
  const problems: string[] = [];
  for (const spec of tensors) {
    const t = index.tensors.get(spec.name);
    if (!t) problems.push(`tensor ${spec.name} is missing (expected shape [${spec.shape}])`);
    else if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      problems.push(`tensor ${spec.name} has shape [${t.shape}], expected [${spec.shape}]`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 10).join('; ');
    const more = problems.length > 10 ? `; and ${problems.length - 10} more` : '';
    throw new ModelLoadError(`checkpoint does not match config.json (${expertLayout} experts): ${shown}${more}`);
  }
  return { expertLayout, tensors };
}
