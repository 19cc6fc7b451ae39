// Prefill: the whole model over a prompt with naive-order MLA, on the GPU, in one submit.
//
// Per layer (HF DeepseekV2DecoderLayer):
//   1. xn = RMSNorm(x)                         4. kv = kv_b_proj(c) → per head [k_nope, v] (naive order)
//   2. q = q_proj(xn) | q_b(RMSNorm(q_a(xn)))  5. o = causal softmax([q_nope,q_pe]·[k_nope,k_pe]) v
//      rope on q_pe                            6. x += o_proj(o)
//   3. latent = kv_a_proj_with_mqa(xn): c is RMSNorm'd and k_pe roped in place, so `latent` holds exactly the
//      rows the decode node caches (normalized c ‖ roped k_pe) — the prefill's KV output, one buffer a layer
//   7. x += MLP(RMSNorm(x)) — dense, or shared experts + routed experts (DeepSeekMoE)
// then the final norm and the LM head on the last position (or every position when asked).
import type { Gpu } from '../runtime/runtime.js';
import type { KernelProgram } from '../runtime/program.js';
import { latentRowWidth, qkHeadDim, type MlaConfig } from '@latentwire/model';
import { attentionSoftmaxScale, modelRopeInverseFrequencies, ropeAttentionFactor, type RopeFreqPrecision } from '@latentwire/model';
import type { ModelWeights } from '../weights/model-weights.js';
import { embedding } from '../kernels/embedding/embedding.js';
import { rmsNorm } from '../kernels/rms-norm/rms-norm.js';
import { rope } from '../kernels/rope/rope.js';
import { argmax } from '../kernels/argmax/argmax.js';
import { matmul } from '../kernels/matmul/matmul.js';
import { mlpPrograms, moePrograms, allocMoeScratch } from './mlp-programs.js';
import { kvQuantize } from '../kernels/kv-quantize/kv-quantize.js';
import { sampleTokens } from '../kernels/sample/sample.js';
import { packSamplingParams, type SamplingParams } from '../kernels/sample/sampling-params.js';
import { pagesFor, type LatentKvLayout } from '@latentwire/protocol';
import { attentionPrograms } from './attention-programs.js';

export interface PrefillOptions {
  /** Compute logits at every position (for argmax per position); default only the last. */
  readonly allLogits?: boolean;
  /** Positions of the prompt start at this value (default 0). */
  readonly startPosition?: number;
  /** Stream each layer's KV as pages of `layout` as soon as the layer is computed (the disaggregated path). */
  readonly stream?: PrefillStream;
  /** Sample the next token on the GPU from the last position's logits (output.token). */
  readonly sample?: SamplingParams;
}

export interface PrefillStream {
  readonly layout: LatentKvLayout;
  /**
   * Called in layer order, one call at a time, with that layer's pages (contiguous: page i holds tokens
   * [i·pageSize, (i+1)·pageSize), in the layout's bytes) while later layers compute. A throw (e.g. the request
   * was cancelled) stops the prefill before its next layer and rejects prefill().
   */
  onLayer(layer: number, pages: Uint8Array): Promise<void> | void;
}

export interface PrefillOutput {
  readonly tokens: number;
  /** Logits at the last position, [vocab]. */
  readonly lastLogits: Float32Array;
  /** Greedy choice at every position (only with allLogits). */
  readonly argmax: Uint32Array | null;
  /** The sampled next token (only with opts.sample). */
  readonly token: number | null;
  /** Per layer: f32 [tokens, kv_lora_rank + qk_rope_head_dim] latent KV rows, token-major (pages are row ranges). */
  readonly latent: readonly GPUBuffer[];
  /** Frees the latent buffers. */
  release(): void;
}

export interface PrefillModelOptions {
  /** See RopeFreqPrecision (ROPE_FREQ_PRECISION); required, so a decode model can be given the same. */
  readonly ropeFreqPrecision: RopeFreqPrecision;
}

export class PrefillModel {
  private readonly invFreq: GPUBuffer;
  /** The RoPE frequencies' precision; a decode model on the same weights must use the same. */
  readonly ropeFreqPrecision: RopeFreqPrecision;

  constructor(readonly gpu: Gpu, readonly cfg: MlaConfig, readonly weights: ModelWeights, opts: PrefillModelOptions) {
    this.ropeFreqPrecision = opts.ropeFreqPrecision;
    this.invFreq = gpu.upload('rope.inv_freq', modelRopeInverseFrequencies(cfg, this.ropeFreqPrecision, weights.embed.dtype));
  }

  async prefill(ids: readonly number[], opts: PrefillOptions = {}): Promise<PrefillOutput> {
    const { gpu, cfg, weights } = this;
    const T = ids.length;
    if (T === 0) throw new RangeError('prefill: empty prompt');
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new RangeError(`prefill: token id ${id} outside [0, ${cfg.vocabSize})`);
    }
    const H = cfg.hiddenSize;
    const heads = cfg.numHeads;
    const qkDim = qkHeadDim(cfg);
    const latentWidth = latentRowWidth(cfg);
    const start = opts.startPosition ?? 0;
    const lim = gpu.limits;
    // widest SiLU-gated MLP: dense layers, or the shared experts fused into one MLP
    const maxInter = Math.max(cfg.intermediateSize, (cfg.moe?.moeIntermediateSize ?? 0) * (cfg.moe?.nSharedExperts ?? 0));

    const s = {
      ids: gpu.upload('ids', Uint32Array.from(ids)),
      positions: gpu.upload('positions', Uint32Array.from({ length: T }, (_, i) => start + i)),
      x: gpu.buffer('x', T * H * 4),
      xn: gpu.buffer('xn', T * H * 4),
      q: gpu.buffer('q', T * heads * qkDim * 4),
      qa: cfg.qLoraRank === null ? null : gpu.buffer('q_a', T * cfg.qLoraRank * 4),
      kv: gpu.buffer('kv', T * heads * (cfg.qkNopeHeadDim + cfg.vHeadDim) * 4),
      attn: gpu.buffer('attn_out', T * heads * cfg.vHeadDim * 4),
      gateUp: gpu.buffer('mlp.gate_up', T * 2 * maxInter * 4),
      gated: gpu.buffer('mlp.gated', T * maxInter * 4),
      moe: cfg.moe ? allocMoeScratch(gpu, cfg, T) : null,
    };
    const latent = weights.layers.map((_, l) => gpu.buffer(`latent.${l}`, T * latentWidth * 4));
    const scale = attentionSoftmaxScale(cfg);
    const factor = ropeAttentionFactor(cfg);

    // one group of programs per layer, so a streaming prefill can submit (and send) layer by layer
    const groups: KernelProgram[][] = [[embedding({ ids: s.ids, table: weights.embed, y: s.x, tokens: T })]];
    weights.layers.forEach((lw, l) => {
      const programs = l === 0 ? groups[0]! : [];
      if (l > 0) groups.push(programs);
      programs.push(rmsNorm({ x: s.x, weight: lw.inputNorm, y: s.xn, rows: T, cols: H, eps: cfg.rmsNormEps }));
      if (lw.query.kind === 'direct') {
        programs.push(matmul({ x: s.xn, weight: lw.query.qProj, y: s.q, M: T, N: heads * qkDim, K: H }, lim));
      } else {
        const r = cfg.qLoraRank!;
        programs.push(
          matmul({ x: s.xn, weight: lw.query.qAProj, y: s.qa!, M: T, N: r, K: H }, lim),
          rmsNorm({ x: s.qa!, weight: lw.query.qANorm, y: s.qa!, rows: T, cols: r, eps: cfg.rmsNormEps }),
          matmul({ x: s.qa!, weight: lw.query.qBProj, y: s.q, M: T, N: heads * qkDim, K: r }, lim),
        );
      }
      programs.push(
        rope({ x: s.q, positions: s.positions, invFreq: this.invFreq, rows: T, heads, ropeDim: cfg.qkRopeHeadDim,
          rowStride: heads * qkDim, headStride: qkDim, offset: cfg.qkNopeHeadDim, attentionFactor: factor }),
        matmul({ x: s.xn, weight: lw.kvAProj, y: latent[l]!, M: T, N: latentWidth, K: H }, lim),
        rmsNorm({ x: latent[l]!, weight: lw.kvANorm, y: latent[l]!, rows: T, cols: cfg.kvLoraRank, eps: cfg.rmsNormEps,
          inStride: latentWidth, outStride: latentWidth }),
        rope({ x: latent[l]!, positions: s.positions, invFreq: this.invFreq, rows: T, heads: 1, ropeDim: cfg.qkRopeHeadDim,
          rowStride: latentWidth, headStride: 0, offset: cfg.kvLoraRank, attentionFactor: factor }),
        matmul({ x: latent[l]!, xStride: latentWidth, weight: lw.kvBProj, y: s.kv, M: T, N: heads * (cfg.qkNopeHeadDim + cfg.vHeadDim), K: cfg.kvLoraRank }, lim),
        ...attentionPrograms(cfg, { q: s.q, kv: s.kv, latent: latent[l]!, out: s.attn, tokens: T, startPosition: start, scale }, lim),
        matmul({ x: s.attn, weight: lw.oProj, y: s.x, M: T, N: H, K: heads * cfg.vHeadDim, accumulate: true }, lim),
        rmsNorm({ x: s.x, weight: lw.postAttentionNorm, y: s.xn, rows: T, cols: H, eps: cfg.rmsNormEps }),
      );
      if (lw.mlp.kind === 'dense') {
        programs.push(...mlpPrograms(lw.mlp, { x: s.xn, out: s.x, gateUp: s.gateUp, gated: s.gated, rows: T, H, inter: cfg.intermediateSize }, lim));
      } else {
        programs.push(...moePrograms(cfg, lw.mlp, { x: s.xn, out: s.x, gateUp: s.gateUp, gated: s.gated, rows: T, scratch: s.moe! }, lim));
      }
    });

    // final norm + LM head: the last row only, or all rows in chunks (so the logits buffer stays small),
    // whose last chunk then holds the last row's logits
    const programs: KernelProgram[] = [];
    groups.push(programs);
    const V = cfg.vocabSize;
    let logitsBuf: GPUBuffer;
    let lastRowInBuf = 0;
    let argmaxBuf: GPUBuffer | null = null;
    if (opts.allLogits) {
      programs.push(rmsNorm({ x: s.x, weight: weights.finalNorm, y: s.xn, rows: T, cols: H, eps: cfg.rmsNormEps }));
      argmaxBuf = gpu.buffer('argmax', T * 4);
      const rowsPerChunk = Math.max(1, Math.min(T, Math.floor((64 << 20) / (V * 4))));
      logitsBuf = gpu.buffer('logits.chunk', rowsPerChunk * V * 4);
      for (let r0 = 0; r0 < T; r0 += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, T - r0);
        programs.push(
          matmul({ x: s.xn, xOffset: r0 * H, weight: weights.lmHead, y: logitsBuf, M: rows, N: V, K: H }, lim),
          argmax({ logits: logitsBuf, out: argmaxBuf, rows, cols: V, outOffset: r0 }),
        );
        lastRowInBuf = T - 1 - r0;
      }
    } else {
      logitsBuf = gpu.buffer('logits.last', V * 4);
      programs.push(
        rmsNorm({ x: s.x, weight: weights.finalNorm, y: s.xn, rows: 1, cols: H, eps: cfg.rmsNormEps, inOffset: (T - 1) * H }),
        matmul({ x: s.xn, weight: weights.lmHead, y: logitsBuf, M: 1, N: V, K: H }, lim),
      );
    }
    let sampled: { params: GPUBuffer; out: GPUBuffer } | null = null;
    if (opts.sample) {
      sampled = { params: gpu.upload('sample.params', packSamplingParams([opts.sample])), out: gpu.buffer('sample.token', 4) };
      programs.push(sampleTokens({ logits: logitsBuf, logitsOffset: lastRowInBuf * V, params: sampled.params, out: sampled.out, rows: 1, vocab: V }));
    }
    const release = () => {
      gpu.destroy(s.ids, s.positions, s.x, s.xn, s.q, s.qa, s.kv, s.attn, s.gateUp, s.gated, logitsBuf, argmaxBuf, sampled?.params, sampled?.out);
      s.moe?.release();
    };
    try {
      if (opts.stream) await this.runStreaming(groups, latent, T, opts.stream);
      else await gpu.run(groups.flat());
    } catch (err) {
      release();
      gpu.destroy(...latent);
      throw err;
    }
    const logits = await gpu.readF32(logitsBuf, lastRowInBuf * V * 4, V);
    const am = argmaxBuf ? await gpu.readU32(argmaxBuf, 0, T) : null;
    const token = sampled ? (await gpu.readU32(sampled.out, 0, 1))[0]! : null;
    release();
    return {
      tokens: T,
      lastLogits: logits,
      argmax: am,
      token,
      latent,
      release: () => gpu.destroy(...latent),
    };
  }

  /**
   * Submits layer by layer; each layer's latent rows are quantized into page layout right behind it and read
   * back, and the callbacks run in order while the GPU goes on with the next layers.
   */
  private async runStreaming(groups: KernelProgram[][], latent: readonly GPUBuffer[], T: number, stream: PrefillStream): Promise<void> {
    const gpu = this.gpu;
    const pages = pagesFor(stream.layout, T);
    const pageIds = gpu.upload('stream.page_ids', Uint32Array.from({ length: pages }, (_, i) => i));
    const staging = latent.map((_, l) => gpu.buffer(`stream.pages.${l}`, pages * stream.layout.pageBytes));
    let chain: Promise<void> = Promise.resolve();
    let failed: unknown = null;
    try {
      for (let l = 0; l <= latent.length; l++) {
        if (failed) break;
        const quantize = l < latent.length ? [kvQuantize({ layout: stream.layout, src: latent[l]!, rows: T, pageIds, cache: staging[l]! })] : [];
        // groups[0] is embedding + layer 0; the last group (index layers) is the final norm and LM head
        await gpu.run([...groups[l]!, ...quantize]);
        if (l === latent.length) break;
        const bytes = gpu.read(staging[l]!, 0, pages * stream.layout.pageBytes);
        bytes.catch(() => undefined); // awaited in its turn below (or not at all after a failure): never unhandled
        const layer = l;
        chain = chain.then(async () => {
          if (failed) return;
          try {
            await stream.onLayer(layer, new Uint8Array(await bytes));
          } catch (err) {
            failed ??= err;
          }
        });
      }
      await chain;
      if (failed) throw failed;
    } finally {
      await chain.catch(() => undefined);
      gpu.destroy(pageIds, ...staging);
    }
  }

  dispose(): void {
    this.gpu.destroy(this.invFreq);
  }
}
