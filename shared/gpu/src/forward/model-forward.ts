// The model forward, written once for both roles (HF DeepseekV2ForCausalLM): the caller picks the rows (the
// prompt's tokens for prefill, one token per sequence for decode) and the attention block, the rest is here.
//
//   embedding → per layer (layerPrograms):
//     1. xn = RMSNorm(x)                                      — at decode sizes (M ≤ 8) 1–3 are one GEMV over
//     2. q = q_proj(xn) | q_b(RMSNorm(q_a(xn)))              — q_pe not yet roped        both weights, the norm in
//                                                                                         its prologue (gemv-fused)
//     3. latent = kv_a_proj_with_mqa(xn), c RMSNorm'd and k_pe roped in place: exactly the rows the decode
//        node caches (normalized c ‖ roped k_pe), in the buffer the attention block names for the layer
//     4. attn = the attention block (prefill: naive order over the prompt; decode: absorbed over the cache)
//     5. x += o_proj(attn)
//     6. x += MLP(RMSNorm(x)) — dense, or shared experts + routed experts (DeepSeekMoE); at decode sizes the
//        norm, gate and up are one GEMV and silu·mul is read by the down projection; a MoE layer's norm and
//        router logits are one GEMV, its selection and grouping one dispatch, and the shared experts run in
//        the routed experts' GEMMs (the decode node's weights hold a copy among them): 5 dispatches a MoE
//        layer (mlp-programs.ts)
//   → final norm → LM head, over the rows the caller asks for.
import type { Gpu } from '../runtime/runtime.js';
import { asBinding, type BufferBinding, type KernelProgram } from '../runtime/program.js';
import { latentRowWidth, qkHeadDim, type MlaConfig, type RopeFreqPrecision } from '@latentwire/model';
import { attentionSoftmaxScale, modelRopeInverseFrequencies, ropeAttentionFactor } from '@latentwire/model';
import type { ModelWeights } from '../weights/model-weights.js';
import type { GpuTensor } from '../kernels/weight-dtype.js';
import { embedding } from '../kernels/embedding/embedding.js';
import { rmsNorm } from '../kernels/rms-norm/rms-norm.js';
import { rope } from '../kernels/rope/rope.js';
import { matmul } from '../kernels/matmul/matmul.js';
import { fusedGemv, type FusedGemvOutput } from '../kernels/matmul/gemv-fused.js';
import { mlpPrograms, moePrograms, splitMatmul } from './mlp-programs.js';
import type { ForwardScratch } from './scratch.js';

/** One forward pass: `rows` tokens at `positions` (u32 [rows]) over `scratch`. */
export interface ForwardPass {
  readonly rows: number;
  readonly positions: GPUBuffer;
  readonly scratch: ForwardScratch;
}

/** The attention part of a layer, the one thing prefill and decode do differently. */
export interface AttentionBlock {
  /** The buffer that receives layer `layer`'s latent rows [rows, r + rope] before programs() runs. */
  latent(layer: number): GPUBuffer;
  /**
   * The block norms and ropes the latent rows itself (ModelForward.latentFinish says how), fused into its own
   * work (the decode block's cache append); otherwise the forward does it before programs().
   */
  readonly finishesLatent?: boolean;
  /**
   * From scratch.q (q_pe not yet roped: see ModelForward.ropeQuery) and the layer's latent rows to scratch.attn
   * [rows, heads·v], before o_proj.
   */
  programs(layer: number, pass: ForwardPass, latent: GPUBuffer): Iterable<KernelProgram>;
}

/** Where ropeQuery writes roped q_pe instead of in place (strides and offset in f32 elements). */
export interface RopedQueryTarget {
  readonly buffer: GPUBuffer;
  readonly rowStride: number;
  readonly headStride: number;
  readonly offset: number;
}

export class ModelForward {
  /** RoPE inverse frequencies, in the precision both roles must share. */
  readonly invFreq: GPUBuffer;
  readonly softmaxScale: number;
  /** DeepSeek YaRN's attention factor on the roped values (1 without YaRN). */
  readonly ropeAttentionFactor: number;

  constructor(readonly gpu: Gpu, readonly cfg: MlaConfig, readonly weights: ModelWeights, readonly ropeFreqPrecision: RopeFreqPrecision) {
    this.invFreq = gpu.upload('rope.inv_freq', modelRopeInverseFrequencies(cfg, ropeFreqPrecision, weights.embed.dtype));
    this.softmaxScale = attentionSoftmaxScale(cfg);
    this.ropeAttentionFactor = ropeAttentionFactor(cfg);
  }

  /** x = embed(ids) for the pass's rows. */
  embedding(pass: ForwardPass, ids: GPUBuffer): KernelProgram {
    return embedding({ ids, table: this.weights.embed, y: pass.scratch.x, tokens: pass.rows });
  }

  /** Layer `l` over the pass's rows, with `attention` as its attention block. */
  *layer(l: number, pass: ForwardPass, attention: AttentionBlock): Generator<KernelProgram> {
    const { cfg, gpu } = this;
    const lw = this.weights.layers[l]!;
    const { rows: M, scratch: s } = pass;
    const H = cfg.hiddenSize, heads = cfg.numHeads, r = cfg.kvLoraRank, width = latentRowWidth(cfg);
    const lim = gpu.matmulLimits;
    const latent = attention.latent(l);
    const eps = cfg.rmsNormEps;
    const qOut: FusedGemvOutput = lw.query.kind === 'direct'
      ? { weight: lw.query.qProj, y: s.q, N: heads * qkHeadDim(cfg) }
      : { weight: lw.query.qAProj, y: s.qa!, N: cfg.qLoraRank! };
    const kvOut: FusedGemvOutput = { weight: lw.kvAProj, y: latent, N: width };
    // RMSNorm(x) → q (or q_a) and the latent row: at decode sizes one GEMV over both weights with the norm in
    // its prologue, else the norm then two matmuls
    const inProj = fusedGemv({ x: s.x, M, K: H, norm: { weight: lw.inputNorm, eps }, outputs: [qOut, kvOut] }, lim);
    if (inProj) yield inProj;
    else {
      yield rmsNorm({ x: s.x, weight: lw.inputNorm, y: s.xn, rows: M, cols: H, eps });
      for (const o of [qOut, kvOut]) yield* splitMatmul({ x: s.xn, weight: o.weight, y: o.y, M, N: o.N, K: H }, s.splitK, lim);
    }
    if (lw.query.kind === 'lora') {
      const qr = cfg.qLoraRank!;
      const qOutB: FusedGemvOutput = { weight: lw.query.qBProj, y: s.q, N: heads * qkHeadDim(cfg) };
      const qb = fusedGemv({ x: s.qa!, M, K: qr, norm: { weight: lw.query.qANorm, eps }, outputs: [qOutB] }, lim);
      if (qb) yield qb;
      else {
        yield rmsNorm({ x: s.qa!, weight: lw.query.qANorm, y: s.qa!, rows: M, cols: qr, eps });
        yield* splitMatmul({ x: s.qa!, weight: qOutB.weight, y: s.q, M, N: qOutB.N, K: qr }, s.splitK, lim);
      }
    }
    if (!attention.finishesLatent) {
      yield rmsNorm({ x: latent, weight: lw.kvANorm, y: latent, rows: M, cols: r, eps: cfg.rmsNormEps, inStride: width, outStride: width });
      yield rope({
        x: latent, positions: pass.positions, invFreq: this.invFreq, rows: M, heads: 1, ropeDim: cfg.qkRopeHeadDim,
        rowStride: width, headStride: 0, offset: r, attentionFactor: ropeAttentionFactor(cfg),
      });
    }
    yield* attention.programs(l, pass, latent);
    yield* splitMatmul({ x: s.attn, weight: lw.oProj, y: s.x, M, N: H, K: heads * cfg.vHeadDim, accumulate: true }, s.splitK, lim);
    const postNorm = { x: s.x, weight: lw.postAttentionNorm, eps };
    const mlp = (rows: number): KernelProgram[] => lw.mlp.kind === 'dense'
      ? mlpPrograms(lw.mlp, { x: s.xn, out: s.x, gateUp: s.gateUp, gated: s.gated, rows, H, inter: cfg.intermediateSize, splitK: s.splitK }, lim, postNorm)
      : moePrograms(cfg, lw.mlp, { x: s.xn, out: s.x, gateUp: s.gateUp, gated: s.gated, rows, scratch: s.moe!, splitK: s.splitK }, lim, postNorm);
    if (M <= s.mlpRows) yield* mlp(M);
    else {
      // more rows than the MLP scratch holds (a long prompt): the MLP is per token, so it runs chunk by chunk over
      // the residual's rows, each chunk's programs seeing x and xn from its first row. The chunks are as even as
      // the binding offsets' alignment allows, so none is a sliver that would pick other kernels (and add prompt-
      // length buckets for compileAll to find).
      const align = gpu.limits.minStorageBufferOffsetAlignment;
      const alignRows = align / gcd(H * 4, align);
      if (alignRows > s.mlpRows) throw new RangeError(`layer ${l}: MLP chunks aligned to ${alignRows} rows exceed the scratch's ${s.mlpRows}`);
      let step = M;
      for (let chunks = Math.ceil(M / s.mlpRows); step > s.mlpRows; chunks++) step = Math.ceil(Math.ceil(M / chunks) / alignRows) * alignRows;
      for (let r0 = 0; r0 < M; r0 += step) {
        const rows = Math.min(step, M - r0);
        yield* fromRow(mlp(rows), [s.x, s.xn], r0 * H * 4, rows * H * 4);
      }
    }
  }

  /** How layer `l`'s latent rows are finished (c RMSNorm'd, k_pe roped), for a block that does it itself. */
  latentFinish(l: number): { normWeight: GpuTensor; eps: number; invFreq: GPUBuffer; attentionFactor: number } {
    return { normWeight: this.weights.layers[l]!.kvANorm, eps: this.cfg.rmsNormEps, invFreq: this.invFreq, attentionFactor: ropeAttentionFactor(this.cfg) };
  }

  /** Ropes q_pe of scratch.q at the pass's positions: in place, or into `to`. For attention blocks. */
  ropeQuery(pass: ForwardPass, to?: RopedQueryTarget): KernelProgram {
    const { cfg } = this;
    const qkDim = qkHeadDim(cfg);
    return rope({
      x: pass.scratch.q, positions: pass.positions, invFreq: this.invFreq, rows: pass.rows, heads: cfg.numHeads, ropeDim: cfg.qkRopeHeadDim,
      rowStride: cfg.numHeads * qkDim, headStride: qkDim, offset: cfg.qkNopeHeadDim, attentionFactor: ropeAttentionFactor(cfg),
      ...(to ? { out: to.buffer, outRowStride: to.rowStride, outHeadStride: to.headStride, outOffset: to.offset } : {}),
    });
  }

  /** xn rows [0, rows) = final RMSNorm of x rows [first, first + rows). */
  finalNorm(pass: ForwardPass, first: number, rows: number): KernelProgram {
    const H = this.cfg.hiddenSize;
    return rmsNorm({ x: pass.scratch.x, weight: this.weights.finalNorm, y: pass.scratch.xn, rows, cols: H, eps: this.cfg.rmsNormEps, inOffset: first * H });
  }

  /** logits [rows, vocab] = LM head of the final RMSNorm of x rows [0, rows): one GEMV at decode sizes, else finalNorm, lmHead. */
  *normedLmHead(pass: ForwardPass, rows: number, logits: GPUBuffer): Generator<KernelProgram> {
    const { cfg, weights } = this;
    const fused = fusedGemv({
      x: pass.scratch.x, M: rows, K: cfg.hiddenSize, norm: { weight: weights.finalNorm, eps: cfg.rmsNormEps },
      outputs: [{ weight: weights.lmHead, y: logits, N: cfg.vocabSize }],
    }, this.gpu.matmulLimits);
    if (fused) yield fused;
    else {
      yield this.finalNorm(pass, 0, rows);
      yield this.lmHead(pass, 0, rows, logits);
    }
  }

  /** logits [rows, vocab] = LM head of xn rows [first, first + rows) (after finalNorm). */
  lmHead(pass: ForwardPass, first: number, rows: number, logits: GPUBuffer): KernelProgram {
    const H = this.cfg.hiddenSize;
    return matmul({ x: pass.scratch.xn, xOffset: first * H, weight: this.weights.lmHead, y: logits, M: rows, N: this.cfg.vocabSize, K: H }, this.gpu.matmulLimits);
  }

  dispose(): void {
    this.gpu.destroy(this.invFreq);
  }
}

/** `programs` with each binding of one of `buffers` narrowed to [offset, offset + size) of it. */
function fromRow(programs: readonly KernelProgram[], buffers: readonly GPUBuffer[], offset: number, size: number): KernelProgram[] {
  return programs.map((p) => ({
    ...p,
    buffers: p.buffers.map((b): GPUBuffer | BufferBinding => {
      const bb = asBinding(b);
      const buffer = bb?.buffer ?? (b as GPUBuffer);
      if (!buffers.includes(buffer)) return b;
      if (bb) throw new RangeError(`${p.shader.label}: ${buffer.label} already bound as a range`);
      return { buffer, offset, size };
    }),
  }));
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
