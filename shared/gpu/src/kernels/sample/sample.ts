// GPU token sampler for prefill and decode: f32 logits [rows, vocab] + per-row SamplingParams -> u32 token ids.
// One workgroup per row; rows are independent, and a row's token depends only on its logits and its params.
// Around it (logit-params.ts): logit-adjust (logit_bias, penalties) before, count-tokens and token-logprobs after.
//
// Semantics (test/reference/sample.ts is the float64 spec):
// - Logits are read as f32; NaN counts as -2^126 and values are clamped to ±2^126 (so -inf masks work).
// - temperature 0: argmax, the lowest index on ties (torch.argmax).
// - Otherwise weights w_i = exp((l_i − max) / T) with T clamped to [1e-30, 1e30]; the GPU takes weights below
//   exp(-80) as 0 (a change in any probability of < 1e-29).
// - top_k > 0 keeps the tokens whose logit is >= the k-th largest logit (ties at the boundary all kept).
// - top_p < 1 then keeps the tokens with logit >= τ, τ the largest logit value whose set {logit >= τ} holds at
//   least top_p of the top-k set's mass: the smallest set of most probable tokens reaching top_p, ties kept.
// - The token is drawn from the kept set, renormalized, by inverse CDF in token-index order: the first token
//   whose cumulative kept weight exceeds u · (kept total), u = samplingUniform(seed, counter) in [0, 1).
// The kept set always holds the argmax and the token always has a positive kept weight, whatever the logits.
// Cost: at most 18 passes over a row (sample.wgsl), no scratch memory; greedy rows take one. With `stats` (the
// row-stats kernel's output, sample-row-stats.ts) the first pass reads a row's chunk extremes instead of the row.
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings } from '../../runtime/bindings.js';
import { wgslFile } from '../../runtime/wgsl-source.js';
import { SAMPLING_PARAMS_BYTES } from './sampling-params.js';
import { SAMPLING_UNIFORM_WGSL } from './sampling-uniform.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { checkLogitRows, checkRowStats, sampleStatsChunks } from './sample-row-stats.js';

const UNIFORMS = { rows: 'u32', vocab: 'u32', row_stride: 'u32', logits_offset: 'u32', row_offset: 'u32' } as const;
const BINDINGS = bindings([['logits', 'array<u32>'], ['params', 'array<u32>'], ['out', 'array<u32>', 'read_write']], UNIFORMS);
const STATS_BINDINGS = bindings([['logits', 'array<u32>'], ['params', 'array<u32>'], ['out', 'array<u32>', 'read_write'], ['stats', 'array<Extremes>']], { ...UNIFORMS, chunks: 'u32' });

// pass 1, an invocation's share: its stride of the row, or of the row's chunk extremes
const SCAN_ROW = /* wgsl */ `
fn thread_extremes(base: u32, row: u32, lid: u32) -> Extremes {
  return scan_extremes(base, 0u, u.vocab, lid);
}`;
const READ_STATS = /* wgsl */ `
fn thread_extremes(base: u32, row: u32, lid: u32) -> Extremes {
  var e = NO_EXTREMES;
  for (var c = lid; c < u.chunks; c += WG) { e = extremes_merge(e, stats[row * u.chunks + c]); }
  return e;
}`;

/** Workgroup sizes the sampler compiles for. */
export type SampleWorkgroupSize = 256 | 1024;

/** Workgroup bytes of the sampler at `wg` threads: red_f (8 f32 a thread at 256, 4 at 1024), extremes_red (12 bytes a thread), the rest. */
function sampleWorkgroupBytes(wg: number): number {
  return wg * ((wg > 256 ? 16 : 32) + 12) + 256;
}

/**
 * The sampler's threads a row on a device with these limits: 1024 where it holds them, else 256. A top-p row over
 * 102,400 logits is up to 18 passes of one workgroup; on the H100 one took 0.71 ms at 256 threads, 0.37 at 1024
 * (bench/results/decode-kernels.h100.txt).
 */
export function sampleWorkgroupSize(limits: { readonly maxComputeInvocationsPerWorkgroup: number; readonly maxComputeWorkgroupStorageSize: number; readonly maxComputeWorkgroupSizeX: number }): SampleWorkgroupSize {
  const fits = limits.maxComputeInvocationsPerWorkgroup >= 1024 && limits.maxComputeWorkgroupSizeX >= 1024 && limits.maxComputeWorkgroupStorageSize >= sampleWorkgroupBytes(1024);
  return fits ? 1024 : 256;
}

interface SampleVariant {
  /** The first pass reads sampleRowStats' output. */
  readonly fromStats: boolean;
  readonly wg: SampleWorkgroupSize;
}

function build_sampleTokensShader(v: SampleVariant): KernelShader {
  const b = v.fromStats ? STATS_BINDINGS : BINDINGS;
  const source = wgslFile(new URL('./sample.wgsl', import.meta.url), { BINDINGS: b.wgsl, EXTREMES: v.fromStats ? READ_STATS : SCAN_ROW, WG: String(v.wg) });
  return b.shader(`sample_tokens${v.fromStats ? '_stats' : ''}${v.wg !== 256 ? `_wg${v.wg}` : ''}`, `${SAMPLING_UNIFORM_WGSL}\n${source}`);
}

/** The rows a sampler draws from and for (both samplers' arguments). */
export interface SampleRowsArgs {
  /** f32 logits; row r starts at logitsOffset + r · rowStride (elements). */
  readonly logits: GPUBuffer;
  /** packSamplingParams output; row r's params at index rowOffset + r. */
  readonly params: GPUBuffer;
  /** u32 token ids; row r's at index rowOffset + r. */
  readonly out: GPUBuffer;
  readonly rows: number;
  readonly vocab: number;
  /** Elements between rows (default vocab; 0 samples one row of logits `rows` times). */
  readonly rowStride?: number;
  readonly logitsOffset?: number;
  /** First row of params and out (a chunk of a longer batch). */
  readonly rowOffset?: number;
}

export interface SampleTokensArgs extends SampleRowsArgs {
  /**
   * sampleRowStats' output for these rows (same logits, rows, vocab, stride and offset), dispatched before: the
   * first pass then reads the rows' chunk extremes. Same tokens either way.
   */
  readonly stats?: GPUBuffer;
  /** Threads a row (default 256; sampleWorkgroupSize picks 1024 where the device holds it). Same semantics either way. */
  readonly workgroupSize?: SampleWorkgroupSize;
}

/**
 * The checks both samplers make of their rows (checkLogitRows, and params and out holding rowOffset + rows),
 * thrown as RangeErrors naming `who`; returns the stride and offsets.
 */
export function checkSampleRows(who: string, a: SampleRowsArgs): { rowStride: number; logitsOffset: number; rowOffset: number } {
  const rowOffset = a.rowOffset ?? 0;
  const bad = (why: string) => {
    throw new RangeError(`${who}: ${why}`);
  };
  if (!Number.isInteger(rowOffset) || rowOffset < 0 || rowOffset > 0xffffffff) bad(`rowOffset ${rowOffset} is not a u32`);
  const { rowStride, logitsOffset } = checkLogitRows(who, a);
  if (a.rows > 0) {
    if ((rowOffset + a.rows) * SAMPLING_PARAMS_BYTES > a.params.size) bad(`params buffer (${a.params.size} bytes) holds fewer than ${rowOffset + a.rows} rows`);
    if ((rowOffset + a.rows) * 4 > a.out.size) bad(`out buffer (${a.out.size} bytes) holds fewer than ${rowOffset + a.rows} ids`);
  }
  return { rowStride, logitsOffset, rowOffset };
}

export function sampleTokens(a: SampleTokensArgs): KernelProgram {
  const bad = (why: string) => {
    throw new RangeError(`sampleTokens: ${why}`);
  };
  const { rowStride, logitsOffset, rowOffset } = checkSampleRows('sampleTokens', a);
  const wg = a.workgroupSize ?? 256;
  if (wg !== 256 && wg !== 1024) bad(`workgroupSize ${wg} is not 256 or 1024`);
  const uniformValues = { rows: a.rows, vocab: a.vocab, row_stride: rowStride, logits_offset: logitsOffset, row_offset: rowOffset };
  if (a.stats) {
    checkRowStats('sampleTokens', a.stats, a.rows, a.vocab);
    return {
      shader: sampleTokensShader({ fromStats: true, wg }),
      buffers: STATS_BINDINGS.buffers({ logits: a.logits, params: a.params, out: a.out, stats: a.stats }),
      uniformValues: { ...uniformValues, chunks: sampleStatsChunks(a.vocab) },
      workgroups: [a.rows],
    };
  }
  return {
    shader: sampleTokensShader({ fromStats: false, wg }),
    buffers: BINDINGS.buffers({ logits: a.logits, params: a.params, out: a.out }),
    uniformValues,
    workgroups: [a.rows],
  };
}

export const sampleTokensShader = defineKernel('sample_tokens', build_sampleTokensShader);
