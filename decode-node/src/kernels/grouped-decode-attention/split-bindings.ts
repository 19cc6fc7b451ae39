// The split pass's storage, shared by the f32 and subgroup-matrix kernels: the same buffers in the same order
// (the launcher binds either through one list), q and the partial outputs as vec4s or scalars.
import { numberedBuffers, numberedStorage, type Bound, type StorageDecl } from '@latentwire/gpu';

export function splitStorage(pools: number, rows: 'vec4<f32>' | 'f32'): StorageDecl[] {
  return [
    ['q', `array<${rows}>`], ['seq_lens', 'array<u32>'], ['page_offsets', 'array<u32>'], ['page_table', 'array<u32>'],
    ...numberedStorage('pool', pools, 'array<u32>'),
    ['o_part', `array<${rows}>`, 'read_write'], ['lse', 'array<f32>', 'read_write'],
  ];
}

export interface SplitBuffers {
  readonly q: Bound; readonly seqLens: Bound; readonly pageOffsets: Bound; readonly pageTable: Bound;
  readonly pools: readonly Bound[]; readonly oPart: Bound; readonly lse: Bound;
}

/** splitStorage's buffers by name, for shaderBuffers. */
export function splitBuffers(b: SplitBuffers): Record<string, Bound> {
  return {
    q: b.q, seq_lens: b.seqLens, page_offsets: b.pageOffsets, page_table: b.pageTable, ...numberedBuffers('pool', b.pools), o_part: b.oPart, lse: b.lse,
  };
}
