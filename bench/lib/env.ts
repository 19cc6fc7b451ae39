// The model benches' environment (prefill.ts, decode.ts), parsed once at start with the GPU's and RoPE's
// variables; a bad value exits 2 naming it (failStart). Unset sizes take defaults that depend on the adapter
// (smaller on a software one), so they are optional here and filled in by each bench.
import { fileURLToPath } from 'node:url';
import { KV_DTYPES, env, parseEnv, parseKvDtype, type EnvOf, type KvDtype } from '@latentwire/protocol';
import { DECODE_ENV } from '@latentwire/decode-node';
import { GPU_ENV, MODEL_ENV } from '@latentwire/gpu';
import { MOE_GEMM_VARIANTS, type MoeGemmVariant } from '@latentwire/gpu/kernels';
import { BENCH_SAMPLINGS, type BenchSampling } from './step-input.js';

const positive = (s: string) => {
  const n = Number(s);
  if (!(n > 0) || !Number.isFinite(n)) throw new RangeError(s);
  return n;
};
const optionalInt = (min: number) => env.mapped<number | undefined>(undefined, (s) => {
  if (!/^\d+$/.test(s) || Number(s) < min) throw new RangeError(s);
  return Number(s);
}, `expected a whole number >= ${min}`);
const onOff = (fallback: boolean) => env.mapped<boolean>(fallback, (s) => {
  if (s !== '0' && s !== '1') throw new RangeError(s);
  return s === '1';
}, 'expected 0 or 1');
const optionalInts = (min = 1) => env.mapped<number[] | undefined>(undefined, (s) => {
  const v = s.split(',').map((x) => x.trim()).filter(Boolean);
  if (v.length === 0 || !v.every((x) => /^\d+$/.test(x) && Number(x) >= min)) throw new RangeError(s);
  return v.map(Number);
}, `expected comma-separated whole numbers >= ${min}`);

export const BENCH_ENV = {
  BENCH_CONFIG: env
    .str(fileURLToPath(new URL('../../configs/deepseek-v2-lite.config.json', import.meta.url)))
    .meta({ description: "config.json whose shapes the prefill and decode benches use (synthetic weights)", shown: 'bench/configs/deepseek-v2-lite.config.json' }),
  BENCH_LAYERS: optionalInt(1).meta({ description: "layers of the model benched (software adapters: 2)", shown: "the config's" }),
  BENCH_ITERS: optionalInt(1).meta({ description: 'timed decode steps per row (software adapters: 2)', shown: '10' }),
  BENCH_TOKENS: optionalInts().meta({ description: 'prompt lengths of the prefill bench (software adapters: 16,64)', shown: '512,2048,4096' }),
  BENCH_BATCHES: optionalInts().meta({ description: 'batch sizes of the decode bench (software adapters: 1,4) and the MoE bench (1,16,64,128; software: 4)', shown: '1,16,64' }),
  BENCH_MOE_VARIANTS: env
    .mapped<MoeGemmVariant[] | undefined>(undefined, (s) => {
      const v = s.split(',').map((x) => x.trim()).filter(Boolean);
      if (v.length === 0 || !v.every((x) => (MOE_GEMM_VARIANTS as readonly string[]).includes(x))) throw new RangeError(s);
      return v as MoeGemmVariant[];
    }, `expected comma-separated ${MOE_GEMM_VARIANTS.join(', ')}`)
    .meta({ description: 'expert GEMM forms the MoE bench times', shown: 'those the adapter runs' }),
  BENCH_EXPERT_DTYPE: env
    .mapped<'bf16' | 'f16'>('bf16', (s) => {
      if (s !== 'bf16' && s !== 'f16') throw new RangeError(s);
      return s;
    }, 'expected bf16 or f16')
    .describe("the MoE bench's synthetic expert weights"),
  BENCH_GATE_UP_SPLITS: optionalInts().meta({ description: "K splits of the MoE bench's gate/up kernel on the subgroup-matrix forms, a row each (below one row an expert)", shown: 'the default (moeGateUpSplits)' }),
  BENCH_MOE_GROUP_TILES: optionalInts(0).meta({ description: "The MoE bench's subgroup-matrix forms with their (row tile, column block) workgroups in groups of this many tiles, a row each (0: tiles first)", shown: 'the default (MOE_GROUP_TILES on the prefill-sized forms)' }),
  BENCH_RUNS: env.int(7, 1).describe('timed runs per row of the MoE and matmul benches, as of decode-attention (at least 5 are taken by the MoE bench)'),
  BENCH_RUN_MS: env.int(20, 1).describe('GPU milliseconds each timed run of the MoE bench lasts, as of decode-attention'),
  BENCH_DISPATCHES: optionalInts().meta({ description: 'chain lengths of the dispatch bench (at least two: the cost of a dispatch is their slope)', shown: '1,64,256,1024' }),
  BENCH_ATTENTION: env
    .mapped<('f32' | 'subgroup-matrix')[] | undefined>(undefined, (s) => {
      const v = s.split(',').map((x) => x.trim()).filter(Boolean);
      if (v.length === 0 || !v.every((x) => x === 'f32' || x === 'subgroup-matrix')) throw new RangeError(s);
      return v as ('f32' | 'subgroup-matrix')[];
    }, 'expected comma-separated f32, subgroup-matrix')
    .meta({ description: 'grouped attention kernels the decode bench runs each row with', shown: 'every one the adapter runs' }),
  BENCH_FUSED_MERGE_MAX_SPLITS: optionalInt(1).meta({ description: "most KV splits W_UV's product merges while staging in the decode bench (past it: the merge dispatch)", shown: 'FUSED_MERGE_MAX_SPLITS (64: all)' }),
  BENCH_SHARED_ROUTED: env
    .mapped<boolean[]>([true], (s) => {
      const v = s.split(',').map((x) => x.trim()).filter(Boolean);
      if (v.length === 0 || !v.every((x) => x === '0' || x === '1')) throw new RangeError(s);
      return v.map((x) => x === '1');
    }, 'expected comma-separated 0 / 1')
    .meta({ description: "the decode bench's shared experts run with the routed ones (1, as the decode node) or as their own MLP (0); 1,0 times both, a row each", shown: '1' }),
  BENCH_SAMPLE_ROW_STATS: onOff(true)
    .meta({ description: "the decode bench's sampler after the row-stats pass (1, as the decode node) or reading each row with one workgroup (0)", shown: '1' }),
  BENCH_SAMPLING: env
    .mapped<BenchSampling>('greedy', (s) => {
      if (!(s in BENCH_SAMPLINGS)) throw new RangeError(s);
      return s as BenchSampling;
    }, `expected one of ${Object.keys(BENCH_SAMPLINGS).join(', ')}`)
    .meta({ description: "the decode bench's sampling: greedy, top-p (temperature 0.7, top_p 0.9) or top-k-p (and top_k 50)", shown: 'greedy' }),
  BENCH_SAMPLE_SPREAD: onOff(true)
    .meta({ description: "the decode bench's sampled rows drawn by the spread sampler (1, as the decode node) or one workgroup a row (0)", shown: '1' }),
  BENCH_KV_SPLITS: optionalInt(1).meta({ description: 'KV splits of every decode bench step (the engine\'s DECODE_KV_SPLITS)', shown: 'chosen per step from batch and context' }),
  BENCH_SIZES_MB: optionalInts().meta({ description: 'read sizes (MiB) of the read-patterns bench (software adapters: 4,16)', shown: '16,64,256,1024' }),
  BENCH_READ_PATTERNS: env
    .mapped<'rows' | 'slabs' | 'tiles'>('rows', (s) => {
      if (s !== 'rows' && s !== 'slabs' && s !== 'tiles') throw new RangeError(s);
      return s;
    }, 'expected rows, slabs or tiles')
    .describe("read-patterns bench: rows (whole rows: grid-stride, one-shot, GEMV), slabs (the routed experts' slab reads) or tiles (512-byte tiles into subgroup matrices)"),
  BENCH_DIRECT_U: env
    .mapped<{ U: number; pingPong: boolean }[]>([4, 8].flatMap((U) => [{ U, pingPong: false }, { U, pingPong: true }]), (s) => {
      const v = s.split(',').map((x) => x.trim()).filter(Boolean);
      if (v.length === 0 || !v.every((x) => /^(1|2|4|8|16|32)p?$/.test(x))) throw new RangeError(s);
      return v.map((x) => ({ U: Number.parseInt(x, 10), pingPong: x.endsWith('p') }));
    }, 'expected comma-separated tile counts 1..32 (powers of two), each optionally with p (ping-pong)')
    .meta({ description: 'tiles in flight a matrix a subgroup in bench:moe-tiled-direct, p: two register sets in turn', shown: '4,4p,8,8p' }),
  BENCH_CHUNK_ROWS: optionalInt(1).meta({ description: "most rows of an MLP chunk in the long-prompt bench's chunked model (software adapters: 512)", shown: '8192' }),
  BENCH_CONTEXTS: optionalInts().meta({ description: 'context lengths of the decode bench (software adapters: 256)', shown: '1024,4096' }),
  BENCH_DTYPES: env
    .mapped<KvDtype[]>(['fp8_e4m3', 'bf16'], (s) => {
      const v = s.split(',').map((x) => x.trim()).filter(Boolean).map(parseKvDtype);
      if (v.length === 0) throw new RangeError(s);
      return v;
    }, `expected comma-separated ${KV_DTYPES.join(', ')}`)
    .describe('KV cache dtypes of the decode bench'),
  PAGE_SIZE: DECODE_ENV.PAGE_SIZE,
  PEAK_TFLOPS: env.mapped(65, positive, 'expected a positive number').describe("the prefill bench's ceiling: f32 FMA TFLOP/s (H100 from WGSL)"),
  ...GPU_ENV,
  ...MODEL_ENV,
};

export function benchEnv(e: NodeJS.ProcessEnv = process.env): EnvOf<typeof BENCH_ENV> {
  return parseEnv(BENCH_ENV, e);
}
