// Prefill: the whole model over a prompt, on the GPU, in one submit (or one per layer when streaming). The
// per-layer sequence is the shared forward's (../forward/model-forward.ts); the attention block is naive-order
// MLA over the prompt (attention-programs.ts), whose per-layer latent rows are the prefill's KV output.
// Then the final norm and the LM head on the last position (or every position when asked).
import type { Gpu } from '../runtime/runtime.js';
import type { KernelProgram } from '../runtime/program.js';
import { latentRowWidth, type MlaConfig, type RopeFreqPrecision } from '@latentwire/model';
import type { ModelWeights } from '../weights/model-weights.js';
import { argmax } from '../kernels/argmax/argmax.js';
import { kvQuantize } from '../kernels/kv-quantize/kv-quantize.js';
import { sampleTokens } from '../kernels/sample/sample.js';
import { packSamplingParams, type SamplingParams } from '../kernels/sample/sampling-params.js';
import { logitAdjust } from '../kernels/sample/logit-adjust.js';
import { tokenLogprobs } from '../kernels/sample/token-logprobs.js';
import { maskWords, tokenMask } from '../kernels/sample/token-mask.js';
import {
  countsRow, hasLogitWork, LOGPROBS_WORDS, needsCounts, NO_COUNTS, packLogitRows, penaltiesOf, unpackLogprobs, type LogitSettings, type TokenLogprobs,
} from '../kernels/sample/logit-params.js';
import { pagesFor, type LatentKvLayout } from '@latentwire/protocol';
import { ModelForward, type ForwardPass } from '../forward/model-forward.js';
import { allocForwardScratch } from '../forward/scratch.js';
import { naiveAttention } from './attention-programs.js';

export interface PrefillOptions {
  /** Compute logits at every position (for argmax per position); default only the last. */
  readonly allLogits?: boolean;
  /** Stream each layer's KV as pages of `layout` as soon as the layer is computed (the disaggregated path). */
  readonly stream?: PrefillStream;
  /**
   * Sample the next token on the GPU from the last position's logits (output.token), after logit_bias and
   * penalties (the prompt counts as seen for repetition_penalty; nothing is generated yet), and with
   * `logprobs` set, the token's logprobs (output.logprobs).
   */
  readonly sample?: SamplingParams & LogitSettings & {
    /**
     * Constrained decoding: the grammar's allowed-token bitmask for the first token ([ceil(vocab/32)] u32,
     * GrammarState.mask), applied on the GPU after logit_bias and penalties (token-mask.wgsl).
     */
    readonly mask?: Uint32Array;
    /**
     * The prompt's tail that was generated output (a request resumed on another node): the penalties count
     * these as generated (frequency, presence), as the node that generated them did. Absent: none.
     */
    readonly outputIds?: readonly number[];
  };
  /**
   * With `sample`: draw this many tokens (default 1) from the same last-position logits, draw i with seed +
   * i (mod 2^32), the first tokens of n choices of one prompt (output.choices); each equals what a prefill
   * sampling alone with that seed would draw.
   */
  readonly choices?: number;
  /**
   * Prompt logprobs (completions' echo with logprobs): for every prompt token after the first, its logprob
   * under the logits of the position before it and that distribution's top `promptLogprobs` alternatives, from
   * the raw logits (no bias or penalty), as output.promptLogprobs. Computes the LM head at every position.
   */
  readonly promptLogprobs?: number;
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
  /** Its logprobs (only with opts.sample.logprobs); lastLogits are then the adjusted logits the sampler read. */
  readonly logprobs: TokenLogprobs | null;
  /** With opts.promptLogprobs: entry i is prompt token i + 1's (tokens - 1 entries). */
  readonly promptLogprobs: readonly TokenLogprobs[] | null;
  /** With opts.choices: every draw's token and logprobs, [0] being token and logprobs. */
  readonly choices: readonly { readonly token: number; readonly logprobs: TokenLogprobs | null }[] | null;
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
  /** The shared forward (it owns the RoPE frequencies). */
  readonly forward: ModelForward;
  /** The RoPE frequencies' precision; a decode model on the same weights must use the same. */
  readonly ropeFreqPrecision: RopeFreqPrecision;

  constructor(readonly gpu: Gpu, readonly cfg: MlaConfig, readonly weights: ModelWeights, opts: PrefillModelOptions) {
    this.ropeFreqPrecision = opts.ropeFreqPrecision;
    this.forward = new ModelForward(gpu, cfg, weights, this.ropeFreqPrecision);
  }

  async prefill(ids: readonly number[], opts: PrefillOptions = {}): Promise<PrefillOutput> {
    const { gpu, cfg, weights, forward } = this;
    const T = ids.length;
    if (T === 0) throw new RangeError('prefill: empty prompt');
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new RangeError(`prefill: token id ${id} outside [0, ${cfg.vocabSize})`);
    }
    for (const id of opts.sample?.outputIds ?? []) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new RangeError(`prefill: output token id ${id} outside [0, ${cfg.vocabSize})`);
    }
    const mask = opts.sample?.mask;
    if (mask && mask.length !== maskWords(cfg.vocabSize)) throw new RangeError(`prefill: a grammar mask of ${mask.length} words for a vocabulary of ${cfg.vocabSize}`);
    const idsBuf = gpu.upload('ids', Uint32Array.from(ids));
    const pass: ForwardPass = {
      rows: T,
      positions: gpu.upload('positions', Uint32Array.from({ length: T }, (_, i) => i)),
      scratch: allocForwardScratch(gpu, cfg, T),
    };
    const kv = gpu.buffer('kv', T * cfg.numHeads * (cfg.qkNopeHeadDim + cfg.vHeadDim) * 4);
    const latent = weights.layers.map((_, l) => gpu.buffer(`latent.${l}`, T * latentRowWidth(cfg) * 4));
    const attention = naiveAttention(forward, { latent, kv });

    // one group of programs per layer, so a streaming prefill can submit (and send) layer by layer
    const groups: KernelProgram[][] = weights.layers.map((_, l) => [...forward.layer(l, pass, attention)]);
    groups[0]!.unshift(forward.embedding(pass, idsBuf));

    // final norm + LM head: the last row only, or all rows in chunks (so the logits buffer stays small),
    // whose last chunk then holds the last row's logits
    const programs: KernelProgram[] = [];
    groups.push(programs);
    const V = cfg.vocabSize;
    let logitsBuf: GPUBuffer;
    let lastRowInBuf = 0;
    let argmaxBuf: GPUBuffer | null = null;
    // prompt logprobs: row r of the LM head scores prompt token r + 1 (rows [0, T - 1))
    const promptTop = opts.promptLogprobs;
    let prompt: { next: GPUBuffer; params: GPUBuffer; out: GPUBuffer } | null = null;
    if (promptTop !== undefined && T > 1) {
      prompt = {
        next: gpu.upload('prompt.next-ids', Uint32Array.from({ length: T }, (_, i) => ids[i + 1] ?? 0)),
        params: gpu.upload('prompt.logit-params', packLogitRows(Array.from({ length: T }, () => ({ logprobs: promptTop })), new Array<number>(T).fill(NO_COUNTS), V).params),
        out: gpu.buffer('prompt.logprobs', T * LOGPROBS_WORDS * 4),
      };
    }
    if (opts.allLogits || prompt) {
      programs.push(forward.finalNorm(pass, 0, T));
      argmaxBuf = gpu.buffer('argmax', T * 4);
      const rowsPerChunk = Math.max(1, Math.min(T, Math.floor((64 << 20) / (V * 4))));
      logitsBuf = gpu.buffer('logits.chunk', rowsPerChunk * V * 4);
      for (let r0 = 0; r0 < T; r0 += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, T - r0);
        programs.push(
          forward.lmHead(pass, r0, rows, logitsBuf),
          argmax({ logits: logitsBuf, out: argmaxBuf, rows, cols: V, outOffset: r0 }),
        );
        const scored = Math.min(rows, T - 1 - r0); // the last position has no next prompt token
        if (prompt && scored > 0) {
          programs.push(tokenLogprobs({ logits: logitsBuf, params: prompt.params, tokens: prompt.next, out: prompt.out, rows: scored, vocab: V, rowOffset: r0 }));
        }
        lastRowInBuf = T - 1 - r0;
      }
    } else {
      logitsBuf = gpu.buffer('logits.last', V * 4);
      programs.push(forward.finalNorm(pass, T - 1, 1), forward.lmHead(pass, 0, 1, logitsBuf));
    }
    let sampled: { params: GPUBuffer; out: GPUBuffer } | null = null;
    let adjusted: GPUBuffer[] = [];
    let masked: GPUBuffer[] = [];
    let logprobsBuf: GPUBuffer | null = null;
    const draws = opts.choices ?? 1;
    if (!Number.isInteger(draws) || draws < 1) throw new RangeError(`prefill: choices ${draws} must be a positive integer`);
    // more than one draw reads the one row of logits `draws` times (rowStride 0), each with its own seed
    const stride = draws > 1 ? { rowStride: 0 } : {};
    if (opts.sample) {
      const sample = opts.sample;
      const perDraw = Array.from({ length: draws }, (_, i) => ({ ...sample, seed: (sample.seed + i) >>> 0 }));
      sampled = { params: gpu.upload('sample.params', packSamplingParams(perDraw)), out: gpu.buffer('sample.token', 4 * draws) };
      const logitsOffset = lastRowInBuf * V;
      const around = hasLogitWork(opts.sample);
      if (around) {
        const counts = needsCounts(penaltiesOf(opts.sample));
        const packed = packLogitRows(perDraw, perDraw.map(() => (counts ? 0 : NO_COUNTS)), V);
        adjusted = [
          gpu.upload('logit.params', packed.params),
          gpu.upload('logit.bias', packed.bias),
          gpu.upload('logit.counts', counts ? countsRow(V, ids, opts.sample.outputIds ?? []) : new Uint32Array(V)),
        ];
        programs.push(logitAdjust({ logits: logitsBuf, logitsOffset, params: adjusted[0]!, bias: adjusted[1]!, counts: adjusted[2]!, rows: 1, vocab: V }));
      }
      if (mask) {
        // the draws all read this one row: masking it once (in place) masks every choice's first token
        masked = [gpu.upload('mask.rows', Uint32Array.of(0)), gpu.upload('mask.bits', mask)];
        programs.push(tokenMask({ logits: logitsBuf, logitsOffset, maskRows: masked[0]!, masks: masked[1]!, rows: 1, vocab: V }));
      }
      programs.push(sampleTokens({ logits: logitsBuf, logitsOffset, params: sampled.params, out: sampled.out, rows: draws, vocab: V, ...stride }));
      if (around && opts.sample.logprobs !== undefined) {
        logprobsBuf = gpu.buffer('logprobs', LOGPROBS_WORDS * 4 * draws);
        programs.push(tokenLogprobs({ logits: logitsBuf, logitsOffset, params: adjusted[0]!, tokens: sampled.out, out: logprobsBuf, rows: draws, vocab: V, ...stride }));
      }
    }
    const release = () => {
      gpu.destroy(
        idsBuf, pass.positions, kv, logitsBuf, argmaxBuf, sampled?.params, sampled?.out, logprobsBuf, ...adjusted, ...masked,
        prompt?.next, prompt?.params, prompt?.out,
      );
      pass.scratch.release();
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
    const am = argmaxBuf && opts.allLogits ? await gpu.readU32(argmaxBuf, 0, T) : null;
    let promptLogprobs: TokenLogprobs[] | null = promptTop !== undefined ? [] : null;
    if (prompt) {
      const words = await gpu.readU32(prompt.out, 0, (T - 1) * LOGPROBS_WORDS);
      promptLogprobs = Array.from({ length: T - 1 }, (_, r) => unpackLogprobs(words, r, promptTop!));
    }
    const drawn = sampled ? await gpu.readU32(sampled.out, 0, draws) : null;
    const lpWords = logprobsBuf ? await gpu.readU32(logprobsBuf, 0, LOGPROBS_WORDS * draws) : null;
    const choices = drawn
      ? Array.from(drawn, (t, i) => ({ token: t, logprobs: lpWords ? unpackLogprobs(lpWords, i, opts.sample!.logprobs!) : null }))
      : null;
    const token = choices ? choices[0]!.token : null;
    const logprobs = choices ? choices[0]!.logprobs : null;
    release();
    return {
      tokens: T,
      lastLogits: logits,
      argmax: am,
      token,
      logprobs,
      choices: opts.choices !== undefined ? choices : null,
      promptLogprobs,
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
    this.forward.dispose();
  }
}
