// Shared WGSL pieces, included by name: a shader source says `//!include fp8, silu` on a line of its own and
// the kernel's bindings().shader() replaces that line with the pieces (their dependencies first), each piece
// emitted once per shader however many includes name it. An unknown name is an error at build time.
import { fp8Decode, fp8Encode } from './fp8.js';
import { bf16Encode, bf16Unpack, f16Unpack } from './numbers.js';
import { silu } from './activations.js';
import { treeSumGroups, wgReduce } from './reductions.js';
import { onlineSoftmax } from './softmax.js';
import { rmsRows } from './rms-rows.js';
import { logitExtremes } from './logit-extremes.js';
import { groupedOrder } from './grid-order.js';
import { logitWeights, sampleChunk, sampleSearchState, tokenDraw } from './token-sampling.js';

interface Piece {
  readonly wgsl: string;
  /** Pieces emitted before this one. */
  readonly needs?: readonly string[];
}

const PIECES: Readonly<Record<string, Piece>> = {
  'fp8-encode': { wgsl: fp8Encode },
  'fp8-decode': { wgsl: fp8Decode },
  fp8: { wgsl: '', needs: ['fp8-encode', 'fp8-decode'] },
  'bf16-encode': { wgsl: bf16Encode },
  'bf16-unpack': { wgsl: bf16Unpack },
  'f16-unpack': { wgsl: f16Unpack },
  silu: { wgsl: silu },
  'wg-reduce': { wgsl: wgReduce },
  'online-softmax': { wgsl: onlineSoftmax },
  'tree-sum-groups': { wgsl: treeSumGroups },
  'rms-rows': { wgsl: rmsRows, needs: ['tree-sum-groups'] },
  'logit-extremes': { wgsl: logitExtremes },
  'logit-weights': { wgsl: logitWeights, needs: ['logit-extremes'] },
  'token-draw': { wgsl: tokenDraw, needs: ['logit-weights'] },
  'sample-search-state': { wgsl: sampleSearchState },
  'sample-chunk': { wgsl: sampleChunk },
  'grouped-order': { wgsl: groupedOrder },
};

const WGSL_PIECE_NAMES: readonly string[] = Object.keys(PIECES);

function emit(name: string, seen: Set<string>): string {
  const piece = PIECES[name];
  if (!piece) throw new Error(`WGSL piece '${name}' does not exist (known: ${WGSL_PIECE_NAMES.join(', ')})`);
  if (seen.has(name)) return '';
  seen.add(name);
  return (piece.needs ?? []).map((n) => emit(n, seen)).join('') + piece.wgsl;
}

const INCLUDE = /^[ \t]*\/\/!include[ \t]+(.+?)[ \t]*$/gm;

/** `source` with every `//!include a, b` line replaced by the pieces no earlier include emitted. */
export function resolveIncludes(source: string): string {
  if (!source.includes('//!include')) return source;
  const seen = new Set<string>();
  return source.replace(INCLUDE, (_, list: string) => list.split(',').map((n) => emit(n.trim(), seen)).join(''));
}
