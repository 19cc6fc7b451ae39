// The sampler's first pass (largest logit, its lowest index, smallest logit) over many workgroups a row
// (sample-row-stats.wgsl), for sampleTokens({ stats }). Worth its extra dispatch where rows are few: at batch 1
// the sampler alone would read the whole 102,400-logit row with one workgroup.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { wgslFile } from '../../runtime/wgsl-source.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { SAMPLE_CHUNK } from '../../runtime/wgsl-pieces/token-sampling.js';

/** Logits a workgroup reduces: the WGSL piece sample-chunk's CHUNK (256 threads × 8 loads). */
export const SAMPLE_STATS_CHUNK = SAMPLE_CHUNK;
/** Bytes of one chunk's Extremes (three u32). */
const EXTREMES_BYTES = 12;
/** The y dimension holds the rows. */
const MAX_ROWS = 65535;
/** The sampler's counts are summed in f32, exact below 2^24 (and the chunks then fit the x dimension too). */
export const MAX_SAMPLE_VOCAB = 1 << 24;

/**
 * The checks both sampler kernels make of `rows` rows of `vocab` f32 logits at logitsOffset + r · rowStride
 * (defaults: vocab, 0), thrown as RangeErrors naming `who`; returns the stride and offset.
 */
export function checkLogitRows(
  who: string, a: { readonly logits: GPUBuffer; readonly rows: number; readonly vocab: number; readonly rowStride?: number; readonly logitsOffset?: number },
): { rowStride: number; logitsOffset: number } {
  const rowStride = a.rowStride ?? a.vocab;
  const logitsOffset = a.logitsOffset ?? 0;
  for (const [name, v] of [['rows', a.rows], ['vocab', a.vocab], ['rowStride', rowStride], ['logitsOffset', logitsOffset]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${who}: ${name} ${v} is not a u32`);
  }
  if (a.vocab < 1 || a.vocab > MAX_SAMPLE_VOCAB) throw new RangeError(`${who}: vocab ${a.vocab} not in [1, ${MAX_SAMPLE_VOCAB}]`);
  if (a.rows > 0) {
    const logitsEnd = (logitsOffset + (a.rows - 1) * rowStride + a.vocab) * 4;
    if (logitsEnd > a.logits.size) throw new RangeError(`${who}: logits needs ${logitsEnd} bytes, buffer has ${a.logits.size}`);
  }
  return { rowStride, logitsOffset };
}

const UNIFORMS = { vocab: 'u32', row_stride: 'u32', logits_offset: 'u32', chunks: 'u32' } as const;
const BINDINGS = bindings([['logits', 'array<u32>'], ['stats', 'array<Extremes>', 'read_write']], UNIFORMS);

export const sampleRowStatsShader = defineKernel('sample_row_stats', (_: Record<string, never>): KernelShader =>
  BINDINGS.shader('sample_row_stats', wgslFile(new URL('./sample-row-stats.wgsl', import.meta.url), { BINDINGS: BINDINGS.wgsl })));

/** Throws (naming `who`) unless `stats` holds the row stats of `rows` rows of `vocab` logits. */
export function checkRowStats(who: string, stats: GPUBuffer, rows: number, vocab: number): void {
  const need = sampleRowStatsBytes(rows, vocab);
  if (need > stats.size) throw new RangeError(`${who}: stats needs ${need} bytes, buffer has ${stats.size}`);
}

/** Chunks of a row of `vocab` logits. */
export function sampleStatsChunks(vocab: number): number {
  return Math.ceil(vocab / SAMPLE_STATS_CHUNK);
}

/** Bytes of the stats buffer for `rows` rows of `vocab` logits. */
export function sampleRowStatsBytes(rows: number, vocab: number): number {
  return rows * sampleStatsChunks(vocab) * EXTREMES_BYTES;
}

export interface SampleRowStatsArgs {
  /** f32 logits; row r starts at logitsOffset + r · rowStride (elements). */
  readonly logits: GPUBuffer;
  /** sampleRowStatsBytes(rows, vocab) or more. */
  readonly stats: GPUBuffer;
  readonly rows: number;
  readonly vocab: number;
  /** Elements between rows (default vocab; 0 reads one row `rows` times). */
  readonly rowStride?: number;
  readonly logitsOffset?: number;
}

export function sampleRowStats(a: SampleRowStatsArgs): KernelProgram {
  const { rowStride, logitsOffset } = checkLogitRows('sampleRowStats', a);
  if (a.rows > MAX_ROWS) throw new RangeError(`sampleRowStats: rows ${a.rows} > ${MAX_ROWS}`);
  checkRowStats('sampleRowStats', a.stats, a.rows, a.vocab);
  const chunks = sampleStatsChunks(a.vocab);
  return {
    shader: sampleRowStatsShader({}),
    buffers: BINDINGS.buffers({ logits: a.logits, stats: a.stats }),
    uniformValues: { vocab: a.vocab, row_stride: rowStride, logits_offset: logitsOffset, chunks },
    workgroups: [chunks, a.rows],
  };
}
