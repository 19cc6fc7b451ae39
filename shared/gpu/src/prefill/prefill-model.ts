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
import { sampleSearches, sampleSpread, sampleSpreadScratchBytes } from '../kernels/sample/sample-spread.js';
import { sampleRowStatsBytes } from '../kernels/sample/sample-row-stats.js';
import { packSamplingParams, type SamplingParams } from '../kernels/sample/sampling-params.js';
import { logitAdjust } from '../kernels/sample/logit-adjust.js';
import { tokenLogprobs } from '../kernels/sample/token-logprobs.js';
import { maskWords, tokenMask } from '../kernels/sample/token-mask.js';
import {
  countsRow, hasLogitWork, LOGPROBS_WORDS, needsCounts, NO_COUNTS, packLogitRows, penaltiesOf, unpackLogprobs, type LogitSettings, type TokenLogprobs,
} from '../kernels/sample/logit-params.js';
import { KV_DTYPES, latentKvLayout, pagesFor, type KvDtype, type LatentKvLayout } from '@latentwire/protocol';
import type { KernelShader } from '../runtime/program.js';
import { PipelineCache } from '../runtime/pipeline-cache.js';
import { dryRunGpu } from '../runtime/dry-run.js';
import { GpuError } from '../runtime/errors.js';
import { ModelForward, type ForwardPass } from '../forward/model-forward.js';
import { allocForwardScratch, mlpChunkRows } from '../forward/scratch.js';
import { BufferPool } from '../runtime/buffer-pool.js';
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
  /**
   * Rows a chunk of the MLP takes at most (a longer prompt runs its MLPs chunk by chunk); default mlpChunkRows for
   * the device's binding size. Tests set a small one to run chunks on short prompts.
   */
  readonly mlpChunkRows?: number;
}

/** Idle pooled bytes a prefill model keeps: a 4096-token V2-Lite prefill holds ~1.3 GB while it runs. */
const PREFILL_POOL_IDLE_BYTES = 4 * 2 ** 30;

/**
 * Rows of logits the LM head computes per dispatch when every position's logits are asked for (allLogits,
 * promptLogprobs): the logits buffer stays at 64 MiB whatever the prompt length.
 */
export function logitRowsPerChunk(vocab: number): number {
  return Math.max(1, Math.floor((64 << 20) / (vocab * 4)));
}

export interface PrefillCompileOptions {
  /** Longest prompt to compile for (default the model's max_position_embeddings, the longest a prefill node accepts). */
  readonly maxTokens?: number;
  /** The cache dtypes the KV may be streamed in (default every dtype of KV_DTYPES: a job names its decode node's). */
  readonly kvDtypes?: readonly KvDtype[];
}

export interface PrefillCompiled {
  /** Distinct shaders a prefill can select (all compiled now). */
  readonly shaders: number;
  /** Time to list and compile them (ms). */
  readonly ms: number;
  /** The first prompt length of every bucket: lengths from one to the next select the same shaders. */
  readonly buckets: readonly number[];
  /** Prompt lengths dry-run to find the buckets. */
  readonly lengthsTried: number;
  /**
   * The shortest prompt (up to maxTokens) a prefill cannot run on this device, and why (a launcher's or a
   * buffer's limit); null when every length up to maxTokens runs. Nothing is compiled for it or longer ones.
   */
  readonly limit: { readonly tokens: number; readonly reason: string } | null;
  /**
   * The prefills warmUp() runs: the shortest of the dry runs that together select every compiled shader (each
   * adds one the earlier ones did not), in increasing length.
   */
  readonly warmUpRuns: readonly PrefillWarmUpRun[];
}

/** One real prefill of warmUp(): `tokens` prompt tokens with these options. */
export interface PrefillWarmUpRun {
  readonly tokens: number;
  readonly options: PrefillOptions;
}

/** Prompt lengths tried one by one before bisecting: the GEMV range and a margin past it. */
const DENSE_LENGTHS = 64;

export class PrefillModel {
  /** The shared forward (it owns the RoPE frequencies). */
  readonly forward: ModelForward;
  /** The RoPE frequencies' precision; a decode model on the same weights must use the same. */
  readonly ropeFreqPrecision: RopeFreqPrecision;

  /**
   * Activations, latent rows and scratch of finished prefills, kept for the next ones (the runtime's bind groups
   * are cached by buffer, so reused buffers also spare the encode). At most PREFILL_POOL_IDLE_BYTES idle.
   */
  private readonly pool: BufferPool;

  /** Most rows of one MLP chunk (PrefillModelOptions.mlpChunkRows). */
  readonly mlpChunkRows: number;

  constructor(readonly gpu: Gpu, readonly cfg: MlaConfig, readonly weights: ModelWeights, opts: PrefillModelOptions) {
    this.ropeFreqPrecision = opts.ropeFreqPrecision;
    this.mlpChunkRows = opts.mlpChunkRows ?? mlpChunkRows(cfg, gpu.limits.maxStorageBufferBindingSize);
    if (!Number.isInteger(this.mlpChunkRows) || this.mlpChunkRows < 1) throw new RangeError(`PrefillModel: mlpChunkRows ${this.mlpChunkRows} must be a positive integer`);
    this.pool = new BufferPool(gpu, PREFILL_POOL_IDLE_BYTES);
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
    const pool = this.pool;
    const idsBuf = pool.buffer('ids', 4 * T);
    gpu.write(idsBuf, Uint32Array.from(ids));
    const positions = pool.buffer('positions', 4 * T);
    gpu.write(positions, Uint32Array.from({ length: T }, (_, i) => i));
    const pass: ForwardPass = { rows: T, positions, scratch: allocForwardScratch(pool, cfg, T, '', this.mlpChunkRows) };
    const kv = pool.buffer('kv', T * cfg.numHeads * (cfg.qkNopeHeadDim + cfg.vHeadDim) * 4);
    const latent = weights.layers.map((_, l) => pool.buffer(`latent.${l}`, T * latentRowWidth(cfg) * 4));
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
      const rowsPerChunk = Math.min(T, logitRowsPerChunk(V));
      logitsBuf = pool.buffer('logits.chunk', rowsPerChunk * V * 4);
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
      logitsBuf = pool.buffer('logits.last', V * 4);
      programs.push(forward.finalNorm(pass, T - 1, 1), forward.lmHead(pass, 0, 1, logitsBuf));
    }
    let sampled: { params: GPUBuffer; out: GPUBuffer; stats: GPUBuffer; scratch: GPUBuffer } | null = null;
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
      sampled = {
        params: gpu.upload('sample.params', packSamplingParams(perDraw)), out: gpu.buffer('sample.token', 4 * draws),
        stats: gpu.buffer('sample.stats', sampleRowStatsBytes(draws, V)), scratch: gpu.buffer('sample.scratch', sampleSpreadScratchBytes(draws, V)),
      };
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
      // the decode step's sampler (sample-spread.ts), so a token drawn here is the one a decode step would draw
      programs.push(...sampleSpread({
        logits: logitsBuf, logitsOffset, params: sampled.params, out: sampled.out, rows: draws, vocab: V, ...stride,
        stats: sampled.stats, scratch: sampled.scratch, searches: sampleSearches(perDraw, V),
      }));
      if (around && opts.sample.logprobs !== undefined) {
        logprobsBuf = gpu.buffer('logprobs', LOGPROBS_WORDS * 4 * draws);
        programs.push(tokenLogprobs({ logits: logitsBuf, logitsOffset, params: adjusted[0]!, tokens: sampled.out, out: logprobsBuf, rows: draws, vocab: V, ...stride }));
      }
    }
    const release = () => {
      pool.destroy(idsBuf, pass.positions, kv, logitsBuf);
      gpu.destroy(
        argmaxBuf, sampled?.params, sampled?.out, sampled?.stats, sampled?.scratch, logprobsBuf, ...adjusted, ...masked,
        prompt?.next, prompt?.params, prompt?.out,
      );
      pass.scratch.release();
    };
    try {
      if (opts.stream) await this.runStreaming(groups, latent, T, opts.stream);
      else await gpu.run(groups.flat());
    } catch (err) {
      release();
      pool.destroy(...latent);
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
      release: () => pool.destroy(...latent),
    };
  }

  /**
   * Compiles every shader a prefill can select, for every prompt length up to maxTokens and every cache dtype,
   * with every option a prefill node passes (streamed KV, sampling with logit_bias, penalties and logprobs, a
   * grammar mask, n choices, prompt logprobs), so that no request waits for a shader compile. The prefill node
   * runs it before it reports ready and takes jobs.
   *
   * The shaders are not listed here: the real prefill() runs against a dry-run Gpu (runtime/dry-run.ts) that
   * records the programs instead of dispatching them, so each launcher picks its variant by the same code a
   * request goes through (matmul's GEMV / GEMM / tile by M, the MoE experts' form by tokens, the attention's
   * tiling, the quantize per cache dtype, the sampler and its neighbours). Lengths 1..64 are tried one by one;
   * beyond, powers of two, then bisection wherever two tried lengths select different shaders, down to adjacent
   * lengths: this finds every bucket boundary as long as each launcher's choice only moves forward as the
   * length grows (thresholds on M or tokens, as all of them are), and the test checks prompts on both sides
   * of every boundary compile nothing. With prompt logprobs the LM head runs in chunks of logitRowsPerChunk
   * rows; lengths up to one chunk past it are tried, as longer prompts only repeat chunk sizes already seen.
   * A length whose prefill fails on this device (a launcher's RangeError, a buffer over maxBufferSize, a binding
   * or a grid past the device's limits: the dry run checks both as the dispatch would) would
   * fail as a request too: the shortest such length is found the same way and returned as `limit`.
   */
  async compileAll(opts: PrefillCompileOptions = {}): Promise<PrefillCompiled> {
    const t0 = performance.now();
    const { cfg } = this;
    const maxTokens = opts.maxTokens ?? cfg.maxPositionEmbeddings;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`compileAll: maxTokens ${maxTokens} must be a positive integer`);
    const dtypes = opts.kvDtypes ?? KV_DTYPES;
    if (dtypes.length === 0) throw new RangeError('compileAll: no cache dtype');
    const dry = dryRunGpu(this.gpu);
    const model = new PrefillModel(dry.gpu, cfg, this.weights, { ropeFreqPrecision: this.ropeFreqPrecision, mlpChunkRows: this.mlpChunkRows });
    const V = cfg.vocabSize;
    const chunk = logitRowsPerChunk(V);
    const sample = {
      temperature: 1, topK: 4, topP: 0.9, seed: 1, counter: 0,
      presencePenalty: 0.5, frequencyPenalty: 0.5, repetitionPenalty: 1.1, logitBias: [[0, 1]] as const, logprobs: 2,
      mask: new Uint32Array(maskWords(V)).fill(0xffffffff),
    };
    const layout = (dtype: KvDtype) => latentKvLayout({ dtype, kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize: 16 });
    const widest = dtypes.reduce((a, b) => (layout(b).pageBytes > layout(a).pageBytes ? b : a));
    const byKey = new Map<string, { id: number; program: KernelProgram }>();
    const ids = new Map<KernelShader, number>();
    const idOf = (p: KernelProgram): number => {
      let id = ids.get(p.shader);
      if (id === undefined) {
        const key = PipelineCache.key(p.shader);
        let entry = byKey.get(key);
        if (!entry) byKey.set(key, (entry = { id: byKey.size, program: p }));
        id = entry.id;
        ids.set(p.shader, id);
      }
      return id;
    };
    // a length's signature: the shaders of its dry runs, in program order; or, for a length the prefill cannot
    // run (a launcher's dispatch limit, a buffer over maxBufferSize), the reason, so bisection finds the limit
    const signatures = new Map<number, string>();
    const failures = new Map<number, string>();
    const ran: (PrefillWarmUpRun & { readonly ids: ReadonlySet<number> })[] = [];
    const signature = async (T: number): Promise<string> => {
      let sig = signatures.get(T);
      if (sig !== undefined) return sig;
      const prompt = Array.from({ length: T }, (_, i) => i % V);
      const parts: KernelProgram[][] = [];
      const dryRun = async (o: PrefillOptions) => {
        (await model.prefill(prompt, o)).release();
        const programs = dry.take();
        parts.push(programs);
        ran.push({ tokens: T, options: o, ids: new Set(programs.map(idOf)) });
      };
      try {
        // the cache dtype changes only the quantize programs, whose shaders do not depend on the length: each
        // length runs in the dtype of the largest pages (the one a size limit would stop first), the others at one token
        for (const dtype of T === 1 ? dtypes : [widest]) await dryRun({ stream: { layout: layout(dtype), onLayer: () => undefined }, sample, choices: 2 });
        if (T >= 2 && T <= chunk + 1) await dryRun({ stream: { layout: layout(widest), onLayer: () => undefined }, sample, promptLogprobs: 2 });
        sig = parts.map((p) => p.map(idOf).join(',')).join('|');
      } catch (err) {
        dry.take();
        if (T === 1 || !(err instanceof RangeError || err instanceof GpuError)) throw err;
        failures.set(T, err.message);
        sig = 'cannot run';
      }
      signatures.set(T, sig);
      return sig;
    };
    const refine = async (a: number, b: number): Promise<void> => {
      if (b - a <= 1 || (await signature(a)) === (await signature(b))) return;
      const m = Math.floor((a + b) / 2);
      // tried before recursing: at the last step (b = a + 2) neither half would try it, and a failing m
      // would leave the limit one past the shortest length that fails
      await signature(m);
      await refine(a, m);
      await refine(m, b);
    };
    const probes = new Set<number>();
    for (let T = 1; T <= Math.min(DENSE_LENGTHS, maxTokens); T++) probes.add(T);
    for (let T = DENSE_LENGTHS; T < maxTokens; T *= 2) probes.add(T);
    for (const T of [chunk, chunk + 1, chunk + 2, maxTokens]) if (T <= maxTokens) probes.add(T);
    const sorted = [...probes].sort((a, b) => a - b);
    for (const T of sorted) await signature(T);
    for (let i = 1; i < sorted.length; i++) await refine(sorted[i - 1]!, sorted[i]!);
    model.dispose();
    const tried = [...signatures.keys()].sort((a, b) => a - b);
    const buckets = tried.filter((T, i) => i === 0 || signatures.get(T) !== signatures.get(tried[i - 1]!));
    const programs = [...byKey.values()].map((e) => e.program);
    await this.gpu.compile(programs);
    const limit = tried.find((T) => failures.has(T));
    // the warm-up: shortest runs first, each kept if it selects a shader none before it did
    const covered = new Set<number>();
    const warmUpRuns: PrefillWarmUpRun[] = [];
    for (const r of ran.filter((r) => !failures.has(r.tokens)).sort((a, b) => a.tokens - b.tokens)) {
      if ([...r.ids].every((id) => covered.has(id))) continue;
      for (const id of r.ids) covered.add(id);
      warmUpRuns.push({ tokens: r.tokens, options: r.options });
    }
    return {
      shaders: programs.length, ms: performance.now() - t0, buckets: buckets.filter((T) => !failures.has(T)), lengthsTried: tried.length,
      limit: limit === undefined ? null : { tokens: limit, reason: failures.get(limit)! }, warmUpRuns,
    };
  }

  /**
   * Runs compileAll's warm-up prefills on the device, so that every compiled pipeline has been dispatched once.
   * Some drivers finish a pipeline's compile only at its first dispatch (llvmpipe JIT-compiles each kernel then:
   * on a cold shader cache the first 5-token prefill of the fixture took 85 s on lavapipe, the next 0.08 s), so
   * without it the first requests of each bucket would wait for compiles after the node reports ready.
   * Resolves with the runs made and the time taken.
   */
  async warmUp(compiled: Pick<PrefillCompiled, 'warmUpRuns'>): Promise<{ readonly runs: number; readonly ms: number }> {
    const t0 = performance.now();
    const V = this.cfg.vocabSize;
    for (const { tokens, options } of compiled.warmUpRuns) {
      (await this.prefill(Array.from({ length: tokens }, (_, i) => i % V), options)).release();
    }
    return { runs: compiled.warmUpRuns.length, ms: performance.now() - t0 };
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
    this.pool.dispose();
    this.forward.dispose();
  }
}
