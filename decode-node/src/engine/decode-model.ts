// One decode step for a whole batch, weight-absorbed (DeepSeek-V2 §2.1.2; SGLang's MLA decode), in one submit:
//   the tokens gathered on the GPU (host ids or the previous step's samples) → the shared forward
//   (@latentwire/gpu/forward: embedding, every layer, final norm, LM head) over one row per sequence, with
//   absorbed attention over the paged latent cache as its attention block (absorbed-attention.ts: the row's
//   latent appended to the cache in its dtype, grouped decode attention in the latent space)
//   → sampling on the GPU, so only token ids come back (logits on request).
// Every sequence of the batch has its own length and page table; all buffers are sized once for MAX_BATCH.
// The forward's few hundred dispatches are the same every step of one batch size and split count (same buffers,
// same uniforms: positions and lengths live in buffers), so they are recorded once per (batch, splits)
// (Gpu.record) and a step only encodes them: it builds, validates, packs and binds just its own few programs.
import type { Gpu, KernelProgram, KernelShader, RecordedPrograms } from '@latentwire/gpu';
import {
  countsRow, countTokens, hasLogitWork, kvAppend, logitAdjust, LOGIT_PARAMS_BYTES, LOGPROBS_WORDS, maskWords, NO_COUNTS, NO_MASK, packLogitRows,
  packSamplingParams, sampleRowStats, sampleRowStatsBytes, sampleSearches, sampleSpread, sampleSpreadScratchBytes, sampleSpreadWorkgroups, sampleTokens, sampleWorkgroupSize, tokenMask, SAMPLING_PARAMS_BYTES, tokenLogprobs, unpackLogprobs, type LogitSettings, type SamplingParams, type TokenLogprobs,
} from '@latentwire/gpu/kernels';
import { allocForwardScratch, ModelForward, type ForwardPass } from '@latentwire/gpu/forward';
import { pagesFor, type KvDtype } from '@latentwire/protocol';
import { latentRowWidth, type MlaConfig, type RopeFreqPrecision } from '@latentwire/model';
import type { ModelWeights } from '@latentwire/gpu/weights';
import {
  decodeSplitsFor, groupedDecodePlan, groupedDecodeScratchBytes, MAX_DECODE_SPLITS, type GroupedDecodeVariant,
} from '../kernels/grouped-decode-attention/index.js';
import { FROM_HOST, gatherTokens } from '../kernels/gather-tokens/index.js';
import { prepareAbsorbedWeights, type AbsorbedWeights } from './absorbed-weights.js';
import { absorbedAttention } from './absorbed-attention.js';
import { LatentKvCache } from './latent-kv-cache.js';
import { attentionEngineChoice, type DecodeAttentionEngine } from '../config.js';

export interface DecodeModelOptions {
  /** MAX_BATCH: most sequences in one step. */
  readonly maxBatch: number;
  /** Longest sequence (prompt + output) in tokens: the width of a page table. */
  readonly maxContext: number;
  readonly pageSize: number;
  readonly kvDtype: KvDtype;
  /** Pages in each layer's pool. */
  readonly numPages: number;
  /** DECODE_HEAD_GROUP (default: the kernel plan's). */
  readonly headGroup?: number;
  /** DECODE_ATTENTION_ENGINE (default auto: the subgroup-matrix variant where the adapter can run it). */
  readonly attentionEngine?: DecodeAttentionEngine;
  /** DECODE_KV_SPLITS: 0 or undefined = chosen per step from batch and context length. */
  readonly kvSplits?: number;
  /** Required: the prefill model's value (PrefillModel.ropeFreqPrecision), or the two compute different RoPE angles. */
  readonly ropeFreqPrecision: RopeFreqPrecision;
  /** Grouped kernel tuning (tile tokens, threads). */
  readonly maxTileTokens?: number;
  readonly workgroupSize?: number;
  /** Test hook: forces the pool split (bytes per pool buffer). */
  readonly maxPoolBindingBytes?: number;
  /**
   * Most KV splits W_UV's product merges while staging (default FUSED_MERGE_MAX_SPLITS); past it the merge
   * runs as its own dispatch. Tuning and benches (bench/decode's BENCH_FUSED_MERGE_MAX_SPLITS).
   */
  readonly fusedMergeMaxSplits?: number;
  /**
   * Recorded forwards kept, one per (batch size, KV split count) met, least recently used dropped (default
   * DEFAULT_STEP_CACHE); 0 rebuilds and rebinds every program every step (the slower path, kept to compare).
   */
  readonly stepCache?: number;
  /**
   * The sampler's first pass (each row's largest logit) spread over many workgroups a row before it (default
   * true); false: the sampler's one workgroup a row reads the whole row. Benches (BENCH_SAMPLE_ROW_STATS).
   */
  readonly sampleRowStats?: boolean;
  /**
   * Steps with sampled rows (temperature > 0) draw with the sampler spread over each row's chunks (default true;
   * sample-spread.ts); false: the one-workgroup sampler, which walks a top-p row up to 18 times. Benches
   * (BENCH_SAMPLE_SPREAD).
   */
  readonly sampleSpread?: boolean;
}

/**
 * Most KV splits W_UV's product merges while staging: all of them. Measured on the H200 (V2-Lite, fp8 cache,
 * decode steps, bench/results/decode.h200.txt and decode-merge-dispatch.h200.txt, one GPU-machine call): at batch 1 the merge in
 * W_UV took 6.15 / 6.71 ms of GPU time a step at 1K / 4K context (16 / 64 splits) against 7.33 / 7.03 with the
 * merge dispatch before it; batches 16 and 64 (≤ 8 splits) the same either way. (Before its loads were issued 8
 * splits at a time, the merge in W_UV took 56 µs a layer at batch 1 and 9.0 ms a step at 4K.)
 */
export const FUSED_MERGE_MAX_SPLITS = MAX_DECODE_SPLITS;

/** Recorded forwards a DecodeModel keeps by default: the batch sizes and split counts a serving mix cycles through. */
export const DEFAULT_STEP_CACHE = 16;

/** A greedy row and a row using every search: between them, every sampler pipeline a step can use. */
const GREEDY_ROW: readonly SamplingParams[] = [{ temperature: 0, topK: 0, topP: 1, seed: 0, counter: 0 }];
const SAMPLED_ROW: readonly SamplingParams[] = [{ temperature: 1, topK: 1, topP: 0.5, seed: 0, counter: 0 }];

export interface DecodeStepInput {
  /** The token each sequence feeds this step (ignored where fromPrevious names a row). */
  readonly tokens: readonly number[];
  /**
   * Per sequence: the row of the previously submitted step whose sampled token it feeds (that step may still
   * be running: the token never comes to the CPU first), or -1 to feed tokens[b]. Default all -1.
   */
  readonly fromPrevious?: readonly number[];
  /** Its position: the tokens already cached for the sequence. */
  readonly positions: readonly number[];
  /** Each sequence's pages, covering positions[b] + 1 tokens. */
  readonly pageTables: readonly (readonly number[])[];
  readonly sampling: readonly SamplingParams[];
  /**
   * Per sequence: logit_bias, penalties and logprobs (default none), applied on the GPU before the sampler.
   * A sequence with a penalty needs its counts row (setCounts) named in countsRows.
   */
  readonly logitSettings?: readonly LogitSettings[];
  /** Per sequence: its counts row in [0, maxBatch), or NO_COUNTS. */
  readonly countsRows?: readonly number[];
  /**
   * Per sequence: its grammar's allowed-token bitmask ([ceil(vocab/32)] u32, GrammarState.mask) or null
   * (unconstrained); applied on the GPU after logit_bias and penalties, before the sampler.
   */
  readonly masks?: readonly (Uint32Array | null)[];
  /** Also read back the logits [batch, vocab] (tests, the CLI's `logits`). */
  readonly returnLogits?: boolean;
}

/** A submitted step: its tokens arrive when the GPU is done with it. */
export interface SubmittedStep {
  readonly batch: number;
  readonly tokens: Promise<Uint32Array>;
  /** Per sequence, its token's logprobs (null where not asked); null when no sequence asked. */
  readonly logprobs: Promise<(TokenLogprobs | null)[]> | null;
  /** CPU time to build and submit the step (ms). */
  readonly submitMs: number;
}

export interface DecodeStepOutput {
  readonly tokens: Uint32Array;
  readonly logits: Float32Array | null;
  /** CPU time to build and submit the step's dispatches, and the wait for its tokens after that (ms). */
  readonly timings: { readonly submitMs: number; readonly waitMs: number };
}

/** One step shape (DecodeModel.stepShapes): batch size, the shortest context picking its KV split count, the sampling, its programs. */
interface StepShape {
  readonly B: number;
  readonly ctx: number;
  readonly sampling: readonly SamplingParams[];
  readonly programs: KernelProgram[];
}

export class DecodeModel {
  readonly cache: LatentKvCache;
  readonly variant: GroupedDecodeVariant;
  readonly maxPagesPerSeq: number;
  /** The shared forward (it owns the RoPE frequencies) and its pass over MAX_BATCH rows. */
  private readonly forward: ModelForward;
  private readonly pass: ForwardPass;
  /** The step's own buffers: inputs, sampling, the absorbed attention's scratch, logits. */
  private readonly s: Record<string, GPUBuffer>;
  private partial: GPUBuffer | null = null;
  private partialBytes = 0;
  /** Sampled tokens of the last two steps, alternately: a step may read the previous one's on the GPU. */
  private readonly sampled: readonly [GPUBuffer, GPUBuffer];
  private lastSampled = 0;
  private lastBatch = 0;
  /** Per counts row (one per sequence with penalties): token counts, kept on the GPU (count-tokens). */
  private readonly counts: GPUBuffer;
  private bias: GPUBuffer;
  /** The forward recorded per `${batch}/${splits}`, least recently used first. */
  private readonly recorded = new Map<string, RecordedPrograms>();
  /** The previous step's `${batch}/${splits}`. */
  private lastForward = '';

  private constructor(
    readonly gpu: Gpu, readonly cfg: MlaConfig, readonly weights: ModelWeights, readonly absorbed: AbsorbedWeights,
    readonly opts: DecodeModelOptions,
  ) {
    for (const k of ['maxBatch', 'maxContext', 'pageSize', 'numPages'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new RangeError(`DecodeModel: ${k} = ${opts[k]} must be a positive integer`);
    }
    if (opts.stepCache !== undefined && (!Number.isInteger(opts.stepCache) || opts.stepCache < 0)) {
      throw new RangeError(`DecodeModel: stepCache = ${opts.stepCache} must be a whole number`);
    }
    const B = opts.maxBatch, heads = cfg.numHeads, r = cfg.kvLoraRank, rope = cfg.qkRopeHeadDim;
    this.cache = new LatentKvCache(gpu, {
      layers: cfg.numLayers, kvLoraRank: r, ropeDim: rope, pageSize: opts.pageSize, dtype: opts.kvDtype, numPages: opts.numPages,
      maxBindingBytes: opts.maxPoolBindingBytes,
    });
    this.variant = groupedDecodePlan({
      kvLoraRank: r, ropeDim: rope, dtype: opts.kvDtype, pageSize: opts.pageSize, heads, limits: gpu.limits,
      headGroup: opts.headGroup, maxTileTokens: opts.maxTileTokens, workgroupSize: opts.workgroupSize,
      poolBindings: this.cache.pools[0]!.length,
      ...attentionEngineChoice(opts.attentionEngine ?? 'auto', gpu.matrixCapabilities),
    });
    this.maxPagesPerSeq = pagesFor(this.cache.layout, opts.maxContext);
    this.forward = new ModelForward(gpu, cfg, weights, opts.ropeFreqPrecision);
    this.s = {
      ids: gpu.buffer('dec.ids', B * 4),
      positions: gpu.buffer('dec.positions', B * 4),
      seqLens: gpu.buffer('dec.seq_lens', B * 4),
      tableOffsets: gpu.buffer('dec.table_offsets', B * 4),
      pageTable: gpu.buffer('dec.page_table', B * this.maxPagesPerSeq * 4),
      sampling: gpu.buffer('dec.sampling', B * SAMPLING_PARAMS_BYTES),
      hostIds: gpu.buffer('dec.host_ids', B * 4),
      fromPrevious: gpu.buffer('dec.from_previous', B * 4),
      qAbs: gpu.buffer('dec.q_absorbed', B * heads * (r + rope) * 4),
      latent: gpu.buffer('dec.latent', B * latentRowWidth(cfg) * 4),
      oLatent: gpu.buffer('dec.o_latent', B * heads * r * 4),
      lse: gpu.buffer('dec.lse', groupedDecodeScratchBytes({ batch: B, heads, kvLoraRank: r, numSplits: MAX_DECODE_SPLITS }).lseBytes),
      logits: gpu.buffer('dec.logits', B * cfg.vocabSize * 4),
      logitParams: gpu.buffer('dec.logit_params', B * LOGIT_PARAMS_BYTES),
      logprobs: gpu.buffer('dec.logprobs', B * LOGPROBS_WORDS * 4),
      maskRows: gpu.buffer('dec.mask_rows', B * 4),
      masks: gpu.buffer('dec.masks', B * maskWords(cfg.vocabSize) * 4),
      sampleStats: gpu.buffer('dec.sample_stats', sampleRowStatsBytes(B, cfg.vocabSize)),
      sampleScratch: gpu.buffer('dec.sample_scratch', sampleSpreadScratchBytes(B, cfg.vocabSize)),
    };
    this.counts = gpu.buffer('dec.counts', B * cfg.vocabSize * 4);
    this.bias = gpu.buffer('dec.logit_bias', 8);
    this.pass = { rows: B, positions: this.s.positions!, scratch: allocForwardScratch(gpu, cfg, B, 'dec.') };
    // sequence b's page table starts at row b of pageTable whatever the step: written once
    gpu.write(this.s.tableOffsets!, Uint32Array.from({ length: B }, (_, b) => b * this.maxPagesPerSeq));
    this.sampled = [gpu.buffer('dec.sampled.0', B * 4), gpu.buffer('dec.sampled.1', B * 4)];
  }

  /** Prepares the absorbed weights and allocates the cache and the step buffers. */
  static async create(gpu: Gpu, cfg: MlaConfig, weights: ModelWeights, opts: DecodeModelOptions): Promise<DecodeModel> {
    const absorbed = await prepareAbsorbedWeights(gpu, cfg, weights);
    return new DecodeModel(gpu, cfg, weights, absorbed, opts);
  }

  /**
   * Programs writing a prompt's latent rows (per layer f32 [tokens, r + rope], the prefill's output) into the
   * pages of `pageTable`, as tokens 0 .. tokens-1.
   */
  async writePrompt(latent: readonly GPUBuffer[], tokens: number, pageTable: readonly number[]): Promise<void> {
    if (latent.length !== this.cfg.numLayers) throw new RangeError(`writePrompt: ${latent.length} latent buffers for ${this.cfg.numLayers} layers`);
    if (pageTable.length * this.opts.pageSize < tokens) throw new RangeError(`writePrompt: ${pageTable.length} pages cannot hold ${tokens} tokens`);
    const gpu = this.gpu;
    const positions = gpu.upload('prompt.positions', Uint32Array.from({ length: tokens }, (_, i) => i));
    const offsets = gpu.upload('prompt.table_offsets', new Uint32Array(tokens));
    const table = gpu.upload('prompt.page_table', Uint32Array.from(pageTable));
    try {
      await gpu.run(latent.map((src, l) => kvAppend({
        layout: this.cache.layout, src, rows: tokens, positions, tableOffsets: offsets, pageTable: table,
        pools: this.cache.pools[l]!, pagesPerBuffer: this.cache.pagesPerBuffer,
      })));
    } finally {
      gpu.destroy(positions, offsets, table);
    }
  }

  /**
   * Sets counts row `row` for a sequence joining the batch: its prompt's ids (or their set) and its output so
   * far. Queue-ordered: steps submitted before still see the old row, later ones this.
   */
  setCounts(row: number, promptIds: readonly number[], outputIds: readonly number[]): void {
    if (!Number.isInteger(row) || row < 0 || row >= this.opts.maxBatch) throw new RangeError(`setCounts: row ${row} outside [0, ${this.opts.maxBatch})`);
    this.gpu.write(this.counts, countsRow(this.cfg.vocabSize, promptIds, outputIds), row * this.cfg.vocabSize * 4);
  }

  /** Decodes one token for every sequence of the batch and waits for it. */
  async step(input: DecodeStepInput): Promise<DecodeStepOutput> {
    const t0 = performance.now();
    const submitted = await this.submitStep(input);
    const t1 = performance.now();
    const tokens = await submitted.tokens;
    const logits = input.returnLogits ? await this.gpu.readF32(this.s.logits!, 0, submitted.batch * this.cfg.vocabSize) : null;
    return { tokens, logits, timings: { submitMs: t1 - t0, waitMs: performance.now() - t1 } };
  }

  /**
   * Submits one step and returns at once; its tokens' readback is queued right behind it, so they arrive when
   * this step is done even if later steps were submitted meanwhile (the engine overlaps building step n+1 with
   * the GPU running step n). Logits of a step are only valid until the next one is submitted.
   */
  async submitStep(input: DecodeStepInput): Promise<SubmittedStep> {
    const { gpu, cfg, s } = this;
    const t0 = performance.now();
    const B = input.tokens.length;
    if (B < 1 || B > this.opts.maxBatch) throw new RangeError(`decode step: batch ${B} outside [1, ${this.opts.maxBatch}]`);
    if (input.positions.length !== B || input.pageTables.length !== B || input.sampling.length !== B) {
      throw new RangeError('decode step: tokens, positions, pageTables and sampling must have one entry per sequence');
    }
    const from = input.fromPrevious ?? new Array<number>(B).fill(-1);
    if (from.length !== B) throw new RangeError('decode step: fromPrevious must have one entry per sequence');
    const P = this.maxPagesPerSeq, ps = this.opts.pageSize;
    const table = new Uint32Array(B * P);
    let maxLen = 0;
    input.pageTables.forEach((pages, b) => {
      const pos = input.positions[b]!;
      const f = from[b]!;
      if (f === -1) {
        const tok = input.tokens[b]!;
        if (!Number.isInteger(tok) || tok < 0 || tok >= cfg.vocabSize) throw new RangeError(`decode step: token ${tok} outside the vocabulary`);
      } else if (!Number.isInteger(f) || f < 0 || f >= this.lastBatch) {
        throw new RangeError(`decode step: fromPrevious ${f} is not a row of the previous step (batch ${this.lastBatch})`);
      }
      if (!Number.isInteger(pos) || pos < 0 || pos >= this.opts.maxContext) throw new RangeError(`decode step: position ${pos} outside [0, ${this.opts.maxContext})`);
      if (pages.length * ps <= pos || pages.length > P) throw new RangeError(`decode step: sequence ${b} has ${pages.length} pages for position ${pos}`);
      for (const p of pages) if (!Number.isInteger(p) || p < 0 || p >= this.cache.numPages) throw new RangeError(`decode step: page ${p} outside the pool`);
      table.set(pages, b * P);
      maxLen = Math.max(maxLen, pos + 1);
    });
    gpu.write(s.hostIds!, Uint32Array.from(input.tokens, (t, b) => (from[b] === -1 ? t : 0)));
    gpu.write(s.fromPrevious!, Uint32Array.from(from, (f) => (f === -1 ? FROM_HOST : f)));
    gpu.write(s.positions!, Uint32Array.from(input.positions));
    gpu.write(s.seqLens!, Uint32Array.from(input.positions, (p) => p + 1));
    gpu.write(s.pageTable!, table);
    gpu.write(s.sampling!, packSamplingParams(input.sampling));
    const settings = input.logitSettings ?? [];
    const around = settings.some(hasLogitWork);
    const wantLogprobs = settings.some((x) => x.logprobs !== undefined);
    let retired: GPUBuffer | null = null;
    if (around) {
      const rows = Array.from({ length: B }, (_, b) => settings[b] ?? {});
      const countsRows = Array.from({ length: B }, (_, b) => input.countsRows?.[b] ?? NO_COUNTS);
      for (const r of countsRows) if (r !== NO_COUNTS && (!Number.isInteger(r) || r < 0 || r >= this.opts.maxBatch)) throw new RangeError(`decode step: counts row ${r} outside [0, ${this.opts.maxBatch})`);
      const packed = packLogitRows(rows, countsRows, cfg.vocabSize);
      if (packed.bias.byteLength > this.bias.size) {
        // steps still in flight may read the old buffer: it goes once this step (queued behind them) is done
        retired = this.bias;
        this.bias = gpu.buffer('dec.logit_bias', Math.max(packed.bias.byteLength, 2 * this.bias.size));
      }
      gpu.write(s.logitParams!, packed.params);
      gpu.write(this.bias, packed.bias);
    }

    // grammar masks: row b's at mask row b, written only for constrained rows
    const masks = input.masks ?? [];
    const masked = masks.some((m) => m);
    if (masked) {
      const W = maskWords(cfg.vocabSize);
      masks.forEach((m, b) => {
        if (!m) return;
        if (m.length !== W) throw new RangeError(`decode step: sequence ${b}'s grammar mask has ${m.length} words, not ${W}`);
        gpu.write(s.masks!, m, b * W * 4);
      });
      gpu.write(s.maskRows!, Uint32Array.from({ length: B }, (_, b) => (masks[b] ? b : NO_MASK)));
    }

    const numSplits = this.opts.kvSplits && this.opts.kvSplits > 0
      ? this.opts.kvSplits
      : decodeSplitsFor(this.variant, { batch: B, heads: cfg.numHeads, maxContext: maxLen, workgroupSlots: this.gpu.workgroupSlots.slots });
    const previous = this.sampled[this.lastSampled]!;
    const out = this.sampled[1 - this.lastSampled]!;
    const programs = [
      gatherTokens({ host: s.hostIds!, from: s.fromPrevious!, previous, ids: s.ids!, rows: B }),
      ...(await this.forwardFor(B, numSplits)),
      ...(around ? [this.adjustProgram(B)] : []),
      ...(masked ? [this.maskProgram(B)] : []),
      ...this.samplePrograms(B, out, input.sampling),
      ...(around ? [countTokens({ tokens: out, params: s.logitParams!, counts: this.counts, rows: B, vocab: cfg.vocabSize })] : []),
      ...(wantLogprobs ? [this.logprobsProgram(B, out)] : []),
    ];
    // the tokens' copy-out rides in the step's own submit
    const { bytes } = await gpu.runAndRead(programs, out, 0, B * 4);
    this.lastSampled = 1 - this.lastSampled;
    this.lastBatch = B;
    const tokens = bytes.then((b) => new Uint32Array(b));
    tokens.catch(() => undefined); // the engine awaits it a loop turn later; a failure must not be unhandled meanwhile
    if (retired) tokens.finally(() => gpu.destroy(retired)).catch(() => undefined);
    let logprobs: Promise<(TokenLogprobs | null)[]> | null = null;
    if (wantLogprobs) {
      // queued now, so a later step cannot overwrite the buffer first
      logprobs = gpu.readU32(s.logprobs!, 0, B * LOGPROBS_WORDS).then((w) => settings.map((x, b) => (x.logprobs === undefined ? null : unpackLogprobs(w, b, x.logprobs))));
      logprobs.catch(() => undefined);
    }
    return { batch: B, tokens, logprobs, submitMs: performance.now() - t0 };
  }

  /**
   * Compiles every pipeline a step can use — each batch size up to maxBatch, with each KV split count the
   * split policy can pick for it at any context — so that no request waits for a shader compile. The decode
   * node runs this before it joins the pool. Resolves with the distinct shaders compiled and the time taken.
   */
  async compileAll(): Promise<{ shaders: number; ms: number }> {
    const t0 = performance.now();
    const { s, cfg } = this;
    const byShader = new Map<KernelShader, KernelProgram>();
    const add = (p: KernelProgram) => void (byShader.has(p.shader) || byShader.set(p.shader, p));
    for (const shape of this.stepShapes()) for (const p of shape.programs) add(p);
    add(this.adjustProgram(1));
    add(this.maskProgram(1));
    add(countTokens({ tokens: this.sampled[1], params: s.logitParams!, counts: this.counts, rows: 1, vocab: cfg.vocabSize }));
    add(this.logprobsProgram(1, this.sampled[1]));
    await this.gpu.compile([...byShader.values()]);
    return { shaders: byShader.size, ms: performance.now() - t0 };
  }

  /**
   * Runs decode steps until every pipeline compileAll compiled has been dispatched once: of the step shapes
   * (batch size, KV split count at the shortest context that picks it, greedy or sampled), the cheapest first,
   * each run only if it uses a shader the ones before did not; then one step with logit_bias, penalties, a
   * grammar mask and logprobs. Some drivers finish a pipeline's compile only at its first dispatch (llvmpipe
   * JIT-compiles each kernel then: on a cold shader cache the fixture's first batch-1 step took 89 s on
   * lavapipe, the next 0.04 s, and each new batch size 15-60 s), so without it the first requests would wait
   * for compiles after the node reports ready, stalling every sequence decoding meanwhile. The steps write
   * their KV into the cache's first pages: call it before any sequence holds pages.
   */
  async warmUp(): Promise<{ readonly steps: number; readonly ms: number }> {
    const t0 = performance.now();
    const seen = new Set<KernelShader>();
    let steps = 0;
    const step = async (B: number, ctx: number, sampling: readonly SamplingParams[], more: Partial<DecodeStepInput> = {}) => {
      const pages = Array.from({ length: Math.ceil(ctx / this.opts.pageSize) }, (_, i) => i % this.cache.numPages);
      await this.step({
        tokens: new Array<number>(B).fill(0), positions: new Array<number>(B).fill(ctx - 1), pageTables: new Array<number[]>(B).fill(pages),
        sampling: new Array<SamplingParams>(B).fill(sampling[0]!), ...more,
      });
      steps++;
    };
    for (const shape of this.stepShapes().sort((a, b) => a.B * a.ctx - b.B * b.ctx || a.B - b.B)) {
      if (shape.programs.every((p) => seen.has(p.shader))) continue;
      for (const p of shape.programs) seen.add(p.shader);
      await step(shape.B, shape.ctx, shape.sampling);
    }
    await step(1, 1, GREEDY_ROW, {
      logitSettings: [{ presencePenalty: 0.5, logitBias: [[0, 1]], logprobs: 1 }], countsRows: [0],
      masks: [new Uint32Array(maskWords(this.cfg.vocabSize)).fill(0xffffffff)],
    });
    return { steps, ms: performance.now() - t0 };
  }

  /**
   * The sampler over the step's B rows of logits into `out`: where a row samples, the spread sampler with the
   * searches the rows use; an all-greedy step, the row-stats pass then the one-workgroup sampler's argmax (either
   * form turned off by its option).
   */
  private samplePrograms(B: number, out: GPUBuffer, sampling: readonly SamplingParams[]): KernelProgram[] {
    const { s, cfg } = this;
    const sample = { logits: s.logits!, params: s.sampling!, out, rows: B, vocab: cfg.vocabSize };
    if (this.opts.sampleSpread !== false && sampling.some((p) => p.temperature !== 0)) {
      return sampleSpread({
        ...sample, stats: s.sampleStats!, scratch: s.sampleScratch!, searches: sampleSearches(sampling, cfg.vocabSize),
        maxWorkgroups: sampleSpreadWorkgroups(this.gpu.workgroupSlots.slots),
      });
    }
    const one = { ...sample, workgroupSize: sampleWorkgroupSize(this.gpu.limits) };
    if (this.opts.sampleRowStats === false) return [sampleTokens(one)];
    return [sampleRowStats({ logits: s.logits!, stats: s.sampleStats!, rows: B, vocab: cfg.vocabSize }), sampleTokens({ ...one, stats: s.sampleStats! })];
  }

  private adjustProgram(B: number): KernelProgram {
    return logitAdjust({ logits: this.s.logits!, params: this.s.logitParams!, counts: this.counts, bias: this.bias, rows: B, vocab: this.cfg.vocabSize });
  }

  private maskProgram(B: number): KernelProgram {
    return tokenMask({ logits: this.s.logits!, maskRows: this.s.maskRows!, masks: this.s.masks!, rows: B, vocab: this.cfg.vocabSize });
  }

  private logprobsProgram(B: number, tokens: GPUBuffer): KernelProgram {
    return tokenLogprobs({ logits: this.s.logits!, params: this.s.logitParams!, tokens, out: this.s.logprobs!, rows: B, vocab: this.cfg.vocabSize });
  }

  /**
   * Every step shape a batch can take — each batch size, with each KV split count (at the shortest context that
   * picks it) greedy, and with the first also sampled — and the programs of its step, bar the logit work around
   * the sampler: what compileAll compiles and warmUp dispatches.
   */
  private stepShapes(): StepShape[] {
    const { s } = this;
    const shapes: StepShape[] = [];
    for (let B = 1; B <= this.opts.maxBatch; B++) {
      const gather = gatherTokens({ host: s.hostIds!, from: s.fromPrevious!, previous: this.sampled[0], ids: s.ids!, rows: B });
      [...this.splitChoices(B)].forEach(([numSplits, ctx], i) => {
        const forward = [gather, ...this.forwardPrograms(B, numSplits)];
        for (const sampling of i === 0 ? [GREEDY_ROW, SAMPLED_ROW] : [GREEDY_ROW]) {
          shapes.push({ B, ctx, sampling, programs: [...forward, ...this.samplePrograms(B, this.sampled[1], sampling)] });
        }
      });
    }
    return shapes;
  }

  /**
   * The KV split counts a step of batch B may use, each with the shortest context (of those tried: powers of
   * two and maxContext) at which it does: the configured one, or the policy's over every context.
   */
  private splitChoices(B: number): Map<number, number> {
    if (this.opts.kvSplits && this.opts.kvSplits > 0) return new Map([[this.opts.kvSplits, 1]]);
    const out = new Map<number, number>();
    for (let ctx = 1; ; ctx = Math.min(2 * ctx, this.opts.maxContext)) {
      const splits = decodeSplitsFor(this.variant, { batch: B, heads: this.cfg.numHeads, maxContext: ctx, workgroupSlots: this.gpu.workgroupSlots.slots });
      if (!out.has(splits)) out.set(splits, ctx);
      if (ctx === this.opts.maxContext) return out;
    }
  }

  /**
   * The forward of a step of B rows with `numSplits` KV splits: recorded at the second step in a row of that
   * shape and reused from then on (every buffer it binds lives as long as the model, bar the split scratch,
   * whose growth drops the recordings), or built afresh where the step cache is off.
   */
  private async forwardFor(B: number, numSplits: number): Promise<readonly (KernelProgram | RecordedPrograms)[]> {
    const keep = this.opts.stepCache ?? DEFAULT_STEP_CACHE;
    if (keep === 0) return [...this.forwardPrograms(B, numSplits)];
    this.partialScratch(B, numSplits); // grows (and drops the recordings) first, so a recording never binds a freed one
    const key = `${B}/${numSplits}`;
    const previous = this.lastForward;
    this.lastForward = key;
    let rec = this.recorded.get(key);
    if (rec) {
      this.recorded.delete(key); // most recently used last
    } else if (key !== previous) {
      // a shape's first step runs unrecorded: recording costs a bind group per dispatch, which only pays off
      // over the steps that follow at the same shape (a batch that changes every step never records)
      return [...this.forwardPrograms(B, numSplits)];
    } else {
      rec = await this.gpu.record([...this.forwardPrograms(B, numSplits)], `decode.forward.b${B}.s${numSplits}`);
      const meanwhile = this.recorded.get(key); // recorded by an overlapping call while this one compiled
      if (meanwhile) {
        rec.dispose();
        rec = meanwhile;
        this.recorded.delete(key);
      }
      while (this.recorded.size >= keep) {
        const [oldest, old] = this.recorded.entries().next().value as [string, RecordedPrograms];
        this.recorded.delete(oldest);
        old.dispose(); // steps already submitted keep their uniforms (freed once the queue is done with them)
      }
    }
    this.recorded.set(key, rec);
    return [rec];
  }

  /** Forwards recorded and kept now (tests, metrics). */
  get recordedForwards(): number {
    return this.recorded.size;
  }

  private dropRecorded(): void {
    for (const rec of this.recorded.values()) rec.dispose();
    this.recorded.clear();
  }

  /** The step's programs up to the logits, over its first B rows. */
  private *forwardPrograms(B: number, numSplits: number): Generator<KernelProgram> {
    const { forward, s } = this;
    const pass: ForwardPass = { ...this.pass, rows: B };
    const attention = absorbedAttention(forward, {
      absorbed: this.absorbed, cache: this.cache, variant: this.variant,
      latent: s.latent!, qAbs: s.qAbs!, oLatent: s.oLatent!, lse: s.lse!, partial: this.partialScratch(B, numSplits), numSplits,
      seqLens: s.seqLens!, tableOffsets: s.tableOffsets!, pageTable: s.pageTable!,
      mergeInMatmul: numSplits <= (this.opts.fusedMergeMaxSplits ?? FUSED_MERGE_MAX_SPLITS),
    });
    yield forward.embedding(pass, s.ids!);
    for (let l = 0; l < this.weights.layers.length; l++) yield* forward.layer(l, pass, attention);
    yield* forward.normedLmHead(pass, B, s.logits!);
  }

  /** The split-KV scratch, grown when a step needs more (null for one split). */
  private partialScratch(B: number, numSplits: number): GPUBuffer | null {
    if (numSplits > MAX_DECODE_SPLITS) throw new RangeError(`decode: ${numSplits} KV splits (at most ${MAX_DECODE_SPLITS})`);
    const { partialBytes } = groupedDecodeScratchBytes({ batch: B, heads: this.cfg.numHeads, kvLoraRank: this.cfg.kvLoraRank, numSplits });
    if (partialBytes === 0) return null;
    if (partialBytes > this.partialBytes) {
      this.dropRecorded(); // they bind the old one
      this.gpu.destroy(this.partial);
      this.partial = this.gpu.buffer('dec.partial', partialBytes);
      this.partialBytes = partialBytes;
    }
    return this.partial;
  }

  release(): void {
    this.dropRecorded();
    this.cache.release();
    this.absorbed.release();
    this.pass.scratch.release();
    this.forward.dispose();
    this.gpu.destroy(this.partial, this.counts, this.bias, ...this.sampled, ...Object.values(this.s));
  }
}

