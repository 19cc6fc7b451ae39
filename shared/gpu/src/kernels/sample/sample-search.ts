// One search dispatch of the spread sampler (sample-search.wgsl): every chunk of every row, its state worked out
// from the previous dispatch's bins. Composed by sampleSpread (sample-spread.ts), which owns the scratch layout.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings, type Bound } from '../../runtime/bindings.js';
import { wgslFile } from '../../runtime/wgsl-source.js';
import { defineKernel } from '../../runtime/define-kernel.js';

const UNIFORMS = { vocab: 'u32', row_stride: 'u32', logits_offset: 'u32', row_offset: 'u32', chunks: 'u32', group: 'u32', step: 'u32', last: 'u32' } as const;
const BINDINGS = bindings([
  ['logits', 'array<u32>'], ['params', 'array<u32>'], ['stats', 'array<Extremes>'],
  ['state', 'array<SearchState>', 'read_write'], ['bins', 'array<ChunkBins>', 'read_write'], ['kept', 'array<f32>', 'read_write'],
], UNIFORMS);

/** Bytes of a row's search state (SearchState: 8 words). */
export const SEARCH_STATE_BYTES = 32;
/** Bytes of one chunk's bins of one step (ChunkBins: 16 sums, 16 smallest and 16 largest keys). */
export const CHUNK_BINS_BYTES = 192;

const CHUNK_BINS_WGSL = /* wgsl */ `
struct ChunkBins {
  sum: array<f32, 16>,
  lo_key: array<u32, 16>,
  hi_key: array<u32, 16>,
}
`;

export const sampleSearchShader = defineKernel('sample_search', (_: Record<string, never>): KernelShader =>
  BINDINGS.shader('sample_search', `${CHUNK_BINS_WGSL}\n${wgslFile(new URL('./sample-search.wgsl', import.meta.url), { BINDINGS: BINDINGS.wgsl })}`));

/** What both spread dispatches read (sampleSpread checks it). */
export interface SpreadRows {
  readonly logits: GPUBuffer;
  readonly params: GPUBuffer;
  readonly state: Bound;
  readonly kept: Bound;
  readonly rows: number;
  readonly vocab: number;
  readonly rowStride: number;
  readonly logitsOffset: number;
  readonly rowOffset: number;
  readonly chunks: number;
}

export interface SampleSearchArgs extends SpreadRows {
  readonly stats: Bound;
  readonly bins: Bound;
  /** Chunks a workgroup takes, one after another (the same bits whatever the grouping). */
  readonly group: number;
  /** This dispatch's index in the run (0 starts the rows' searches from the row stats). */
  readonly step: number;
  /** The run's final dispatch: a search still going stops at its lo. */
  readonly last: boolean;
}

/** The checks are the caller's (sampleSpread). */
export function sampleSearch(a: SampleSearchArgs): KernelProgram {
  return {
    shader: sampleSearchShader({}),
    buffers: BINDINGS.buffers({ logits: a.logits, params: a.params, stats: a.stats, state: a.state, bins: a.bins, kept: a.kept }),
    uniformValues: {
      vocab: a.vocab, row_stride: a.rowStride, logits_offset: a.logitsOffset, row_offset: a.rowOffset, chunks: a.chunks, group: a.group, step: a.step, last: a.last ? 1 : 0,
    },
    workgroups: [Math.ceil(a.chunks / a.group), a.rows],
  };
}
