// Walks the model's tensors in one order and asks a source for each, so checkpoint upload and synthetic
// weights build exactly the same structure.
import { isMoeLayer, type MlaConfig } from '@latentwire/model';
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, layerTensorNames, type ExpertTensorNames } from '@latentwire/model';
import type { GpuTensor } from '../kernels/weight-dtype.js';
import type { DenseWeights, ExpertChunk, LayerWeights, MlpWeights, ModelWeights, MoeWeights, QueryWeights } from './model-weights.js';
import { canCopySharedExperts } from './shared-experts.js';

export type TensorRole = 'embedding' | 'norm' | 'linear' | 'router-bias';

export interface WeightSource {
  tensor(name: string, shape: readonly number[], role: TensorRole): GpuTensor;
  /**
   * Linear weights of one input, each [rows, cols], stacked along rows in one buffer: [names.length · rows, cols],
   * so that one GEMM (or GEMV) computes all their outputs side by side in each row.
   */
  stacked(names: readonly string[], rows: number, cols: number): GpuTensor;
  /**
   * Routed experts' `proj` matrices of one layer, stacked [E, rows, cols] in binding-sized chunks, with room for
   * `extra` more experts after them (their contents left to copySharedExperts).
   */
  experts(layer: number, proj: keyof ExpertTensorNames, rows: number, cols: number, extra: number): ExpertChunk[];
  readonly buffers: GPUBuffer[];
}

export interface BuildOptions {
  /**
   * Room for the shared experts after the routed ones in each MoE layer's expert chunks (MoeWeights.routedShared),
   * which copySharedExperts fills once the weights are on the GPU: the decode node runs them with the routed
   * experts at decode batch sizes (moePrograms: up to MOE_SHARED_ROUTED_MAX_TOKENS rows), where their own MLP's
   * dispatches cost more than their bytes. Costs the shared experts' bytes once more.
   */
  readonly routeSharedExperts?: boolean;
}

export function buildWeights(cfg: MlaConfig, src: WeightSource, opts: BuildOptions = {}): ModelWeights {
  const H = cfg.hiddenSize;
  const heads = cfg.numHeads;
  const qkDim = cfg.qkNopeHeadDim + cfg.qkRopeHeadDim;
  const mlp = (n: ExpertTensorNames, inter: number): MlpWeights => ({
    gateUp: src.stacked([n.gate, n.up], inter, H),
    down: src.tensor(n.down, [H, inter], 'linear'),
  });
  const embed = src.tensor(EMBED_TOKENS, [cfg.vocabSize, H], 'embedding');
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const n = layerTensorNames(l);
    const query: QueryWeights =
      cfg.qLoraRank === null
        ? { kind: 'direct', qProj: src.tensor(n.qProj, [heads * qkDim, H], 'linear') }
        : {
            kind: 'lora',
            qAProj: src.tensor(n.qAProj, [cfg.qLoraRank, H], 'linear'),
            qANorm: src.tensor(n.qANorm, [cfg.qLoraRank], 'norm'),
            qBProj: src.tensor(n.qBProj, [heads * qkDim, cfg.qLoraRank], 'linear'),
          };
    let mlpWeights: DenseWeights | MoeWeights;
    if (isMoeLayer(cfg, l)) {
      const moe = cfg.moe!;
      const I = moe.moeIntermediateSize;
      const room = opts.routeSharedExperts ? moe.nSharedExperts : 0;
      const router = src.tensor(n.router, [moe.nRoutedExperts, H], 'linear');
      const routerBias = moe.topkMethod === 'noaux_tc' ? src.tensor(n.routerBias, [moe.nRoutedExperts], 'router-bias') : null;
      const stacks = { gate: src.experts(l, 'gate', I, H, room), up: src.experts(l, 'up', I, H, room), down: src.experts(l, 'down', H, I, room) };
      const shared = moe.nSharedExperts > 0 ? mlp(n.sharedExperts, I * moe.nSharedExperts) : null;
      // where the copy cannot be made (dtypes that differ, rows of half words) the room stays unused
      const routedShared = room > 0 && shared && canCopySharedExperts(shared, stacks, I) ? room : 0;
      mlpWeights = { kind: 'moe', router, routerBias, ...stacks, shared, routedShared };
    } else {
      mlpWeights = { kind: 'dense', ...mlp(n.mlp, cfg.intermediateSize) };
    }
    layers.push({
      inputNorm: src.tensor(n.inputNorm, [H], 'norm'),
      query,
      kvAProj: src.tensor(n.kvAProj, [cfg.kvLoraRank + cfg.qkRopeHeadDim, H], 'linear'),
      kvANorm: src.tensor(n.kvANorm, [cfg.kvLoraRank], 'norm'),
      kvBProj: src.tensor(n.kvBProj, [heads * (cfg.qkNopeHeadDim + cfg.vHeadDim), cfg.kvLoraRank], 'linear'),
      oProj: src.tensor(n.oProj, [H, heads * cfg.vHeadDim], 'linear'),
      postAttentionNorm: src.tensor(n.postAttentionNorm, [H], 'norm'),
      mlp: mlpWeights,
    });
  }
  const finalNorm = src.tensor(FINAL_NORM, [H], 'norm');
  const lmHead = cfg.tieWordEmbeddings ? embed : src.tensor(LM_HEAD, [cfg.vocabSize, H], 'linear');
  const bytes = src.buffers.reduce((a, b) => a + b.size, 0);
  return { embed, layers, finalNorm, lmHead, buffers: src.buffers, bytes };
}

/** Splits `count` experts of `expertBytes` each into runs that fit one storage binding. */
export function expertChunks(count: number, expertBytes: number, maxBinding: number): { first: number; count: number }[] {
  const perChunk = Math.max(1, Math.floor(maxBinding / expertBytes));
  const out: { first: number; count: number }[] = [];
  for (let first = 0; first < count; first += perChunk) out.push({ first, count: Math.min(perChunk, count - first) });
  return out;
}
