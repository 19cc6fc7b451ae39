// The token sampler spread over each row's chunks of 2,048 logits: the row-stats pass, the threshold search as
// one dispatch a step (sample-search.wgsl), and the draw (sample-draw.wgsl). Same semantics as sampleTokens
// (sample.ts); its sums are taken in another order, so where u falls within rounding of a CDF boundary the two
// can draw neighbouring tokens. The one-workgroup sampler walks a top-p row up to 18 times on one streaming
// multiprocessor (0.37 ms a row on an H100, ~10% of a batch-1 decode step); here every pass is spread over the
// row's chunks, and the search narrows to the keys present in its chosen bin, so its later steps find rows done.
//
// Dispatches: row stats, then search steps 0..S (S = 8 for each of top-k and top-p that any row uses: 16 bins
// a step split 32-bit keys in 8; a row's chunks sum their kept masses on the step its threshold is known, and the
// last step ends any search still going), then the draw.
import type { KernelProgram } from '../../runtime/program.js';
import { checkRowStats, sampleRowStats, sampleStatsChunks } from './sample-row-stats.js';
import { CHUNK_BINS_BYTES, SEARCH_STATE_BYTES, sampleSearch } from './sample-search.js';
import { sampleDraw } from './sample-draw.js';
import { checkSampleRows, type SampleRowsArgs } from './sample.js';

/** Search steps a threshold takes at most: 16 bins a step over 32-bit keys. */
const STEPS_PER_SEARCH = 8;
/** Storage bindings start at multiples of this (WebGPU's minStorageBufferOffsetAlignment default). */
const BINDING_ALIGN = 256;
/** The y dimension of the search holds the rows, the x dimension of the draw. */
const MAX_ROWS = 65535;

const align = (n: number) => Math.ceil(n / BINDING_ALIGN) * BINDING_ALIGN;

/** Which searches a batch's rows use (true where unknown: each adds 8 dispatches, none changes a token). */
export interface SampleSearches {
  /** Some row samples (temperature > 0) with 0 < top_k < vocab. */
  readonly topK: boolean;
  /** Some row samples with top_p < 1. */
  readonly topP: boolean;
}

/** The searches of these rows' params (as packSamplingParams takes them). */
export function sampleSearches(params: readonly { readonly temperature: number; readonly topK: number; readonly topP: number }[], vocab: number): SampleSearches {
  const sampled = params.filter((p) => p.temperature !== 0);
  return { topK: sampled.some((p) => p.topK > 0 && p.topK < vocab), topP: sampled.some((p) => p.topP < 1) };
}

/**
 * The search dispatches' workgroup budget on a device that runs `slots` 1024-thread workgroups at once: four
 * 256-thread ones a slot. Past it a workgroup takes several chunks of its row, so a large batch pays each
 * row's state and bins gather once per group of chunks instead of once per chunk.
 */
export function sampleSpreadWorkgroups(slots: number): number {
  return 4 * Math.max(1, slots);
}

/** Scratch sections: state [rows][2], bins [rows][2][chunks], kept masses [rows][chunks]. */
function layout(rows: number, vocab: number) {
  const chunks = sampleStatsChunks(vocab);
  const stateBytes = align(rows * 2 * SEARCH_STATE_BYTES);
  const binsBytes = align(rows * 2 * chunks * CHUNK_BINS_BYTES);
  const keptBytes = align(rows * chunks * 4);
  return { chunks, stateBytes, binsBytes, keptBytes, total: stateBytes + binsBytes + keptBytes };
}

/** Bytes of sampleSpread's scratch buffer for `rows` rows of `vocab` logits. */
export function sampleSpreadScratchBytes(rows: number, vocab: number): number {
  return layout(Math.max(rows, 1), vocab).total;
}

export interface SampleSpreadArgs extends SampleRowsArgs {
  /** sampleRowStatsBytes(rows, vocab) or more: the row stats pass's output. */
  readonly stats: GPUBuffer;
  /** sampleSpreadScratchBytes(rows, vocab) or more. */
  readonly scratch: GPUBuffer;
  /** The searches any row uses (sampleSearches); both by default. A search a row uses but this leaves out stops at once, keeping every token. */
  readonly searches?: SampleSearches;
  /**
   * Workgroups a search dispatch should stay within (about as many as the device runs at once): past it a
   * workgroup takes several of its row's chunks, which gives the same tokens. Default: one chunk each.
   */
  readonly maxWorkgroups?: number;
}

export function sampleSpread(a: SampleSpreadArgs): KernelProgram[] {
  const bad = (why: string) => {
    throw new RangeError(`sampleSpread: ${why}`);
  };
  const { rowStride, logitsOffset, rowOffset } = checkSampleRows('sampleSpread', a);
  if (a.rows > MAX_ROWS) bad(`rows ${a.rows} > ${MAX_ROWS}`);
  if (a.rows === 0) return [];
  checkRowStats('sampleSpread', a.stats, a.rows, a.vocab);
  const l = layout(a.rows, a.vocab);
  if (l.total > a.scratch.size) bad(`scratch needs ${l.total} bytes, buffer has ${a.scratch.size}`);
  const state = { buffer: a.scratch, offset: 0, size: l.stateBytes };
  const bins = { buffer: a.scratch, offset: l.stateBytes, size: l.binsBytes };
  const kept = { buffer: a.scratch, offset: l.stateBytes + l.binsBytes, size: l.keptBytes };
  const searches = a.searches ?? { topK: true, topP: true };
  const last = STEPS_PER_SEARCH * (Number(searches.topK) + Number(searches.topP));
  const rows = { rows: a.rows, vocab: a.vocab, rowStride, logitsOffset, rowOffset, chunks: l.chunks };
  if (a.maxWorkgroups !== undefined && !(Number.isInteger(a.maxWorkgroups) && a.maxWorkgroups >= 1)) bad(`maxWorkgroups ${a.maxWorkgroups} is not a positive integer`);
  const group = Math.min(l.chunks, Math.max(1, Math.ceil((a.rows * l.chunks) / (a.maxWorkgroups ?? a.rows * l.chunks))));
  return [
    sampleRowStats({ logits: a.logits, stats: a.stats, rows: a.rows, vocab: a.vocab, rowStride, logitsOffset }),
    ...Array.from({ length: last + 1 }, (_, step) =>
      sampleSearch({ logits: a.logits, params: a.params, stats: a.stats, state, bins, kept, ...rows, group, step, last: step === last })),
    sampleDraw({ logits: a.logits, params: a.params, state, kept, out: a.out, ...rows, slot: last % 2 }),
  ];
}
