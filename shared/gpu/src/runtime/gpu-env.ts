// The environment every GPU process reads (decode node, prefill node, CLI, benches): the WebGPU device's
// settings and the model's RoPE frequencies. Composed into each process's schema and parsed once at start.
import {
  DEFAULT_MATMUL_GROUP_ROWS, DEFAULT_MATMUL_SPLIT_K_MAX, DEFAULT_MOE_GROUP_TILES, DEFAULT_ROUTER_GEMM_MIN_TOKENS, DEFAULT_MOE_MMA_MIN_ROWS, type GpuOptions,
} from './device.js';
import { env, parseEnv, type EnvOf } from '@latentwire/protocol';
import { DEFAULT_ROPE_FREQ_PRECISION, ROPE_FREQ_PRECISIONS, type RopeFreqPrecision } from '@latentwire/model';

export const GPU_ENV = {
  WEBGPU_ADAPTER: env.optionalStr().describe('substring of the adapter name to use when several exist'),
  DAWN_FEATURES: env.list([]).describe('Dawn toggles, comma-separated; on NVIDIA `allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness` (subgroup matrices, f16, and no bounds clamp on every array index: the kernels index within their buffers, and the clamps cost an H100 22% of the fp8 decode attention and 4.6% of a batch-64 decode step)'),
  DAWN_DISABLED_FEATURES: env.list([]).describe('Dawn toggles turned off, comma-separated; `timestamp_quantization` (with allow_unsafe_apis) gives GPU_PROFILE nanosecond timestamps instead of multiples of 65.536 µs'),
  MATMUL_ENGINE: env
    .oneOf(['auto', 'f32'] as const, 'auto')
    .describe('matmuls of 17+ rows, the experts of prefill-sized batches and prefill attention: `auto` runs them on subgroup matrices (tensor cores, f16 operands) where the adapter has them, `f32` keeps the FMA kernels'),
  MOE_MMA_MIN_ROWS: env
    .int(DEFAULT_MOE_MMA_MIN_ROWS, 0, 1 << 20)
    .describe('routed experts on tensor-core adapters: the average rows per expert (tokens · top-k / experts) from which the subgroup-matrix kernel replaces the GEMV one that reads each weight row once per few rows (below 1: one-row tiles; 0: never the GEMV)'),
  MATMUL_SPLIT_K_MAX: env
    .int(DEFAULT_MATMUL_SPLIT_K_MAX, 1, 64)
    .describe('GEMMs of 17+ rows whose tiles leave workgroup slots idle (decode batches): K cut into up to this many ranges run side by side, their partial sums added by a second dispatch (1: never)'),
  MATMUL_GROUP_ROWS: env
    .int(DEFAULT_MATMUL_GROUP_ROWS, 0, 4096)
    .describe('subgroup-matrix GEMMs with more rows of output blocks than this (prefill): the workgroups take the blocks in groups of this many rows, down each column of the group then across, so those in flight share a few rows of activations and a few blocks of weights in the L2 cache (0: a whole row of blocks at a time, every weight block read again for each row)'),
  MOE_GROUP_TILES: env
    .int(DEFAULT_MOE_GROUP_TILES, 0, 4096)
    .describe('routed experts on the prefill-sized subgroup-matrix tiles: the workgroups take (row tile, column block) in groups of this many tiles, down then across, so those in flight share a few tiles\' rows and a few experts\' weights in the L2 cache (0: every tile at one column block, then the next)'),
  MOE_ROUTER_GEMM_MIN_TOKENS: env
    .int(DEFAULT_ROUTER_GEMM_MIN_TOKENS, 1, 1 << 30)
    .describe('MoE layers: tokens from which the router logits are an f32 GEMM (split over K with MATMUL_SPLIT_K_MAX) instead of the logits kernel (rows staged per workgroup of 1–4 tokens, every 4 experts re-reading them from the L2)'),
  GEMV_STAGE_INPUT: env
    .bool(true)
    .describe('decode GEMVs with a fused RMSNorm or SiLU: the normed / activated input rows computed once per workgroup into workgroup memory where they fit (false: recomputed beside every weight load)'),
  SUBGROUP_REDUCE: env
    .bool(true)
    .describe('decode kernels add across invocations by subgroup operations where the adapter runs every workgroup at one subgroup size (32 on NVIDIA): the GEMVs\' lane sums (the same additions in the same order as through workgroup memory), head_matmul\'s K-split sums and the MoE grouping\'s scan (false: always through workgroup memory)'),
  MOE_DOWN_COMBINE: env
    .bool(true)
    .describe('decode batches of one token: the MoE combine (the weighted sum of the token\'s expert outputs onto the residual) done by the experts\' down GEMV, each slot\'s sum in the same order as the combine kernel\'s, instead of a dispatch of its own (false: the combine dispatch)'),
  PREFILL_ATTENTION_ROWS: env
    .oneOf(['64', '128'] as const, '128')
    .describe('prefill attention on tensor-core adapters: query rows a workgroup takes (16 a subgroup of 32); 128 stages each key tile once for twice the products (H200: the attention 28.6 ms a V2-Lite prefill of 4096 tokens against 40.8) where the device holds its ~47 KiB workgroups, else 64 runs'),
  GPU_PROFILE: env.bool(false).describe('GPU timestamps per kernel (benchmarks and the CLI print them)'),
  DUMP_WGSL: env.bool(false).describe('print every generated WGSL source when it is compiled'),
};

export function gpuOptions(v: EnvOf<typeof GPU_ENV>): GpuOptions {
  return { adapter: v.WEBGPU_ADAPTER, dawnFeatures: v.DAWN_FEATURES, dawnDisabledFeatures: v.DAWN_DISABLED_FEATURES, profile: v.GPU_PROFILE, dumpWgsl: v.DUMP_WGSL, matmulEngine: v.MATMUL_ENGINE, moeMmaMinRows: v.MOE_MMA_MIN_ROWS, splitKMax: v.MATMUL_SPLIT_K_MAX, groupRows: v.MATMUL_GROUP_ROWS, moeGroupTiles: v.MOE_GROUP_TILES, routerGemmMinTokens: v.MOE_ROUTER_GEMM_MIN_TOKENS, gemvStageInput: v.GEMV_STAGE_INPUT, subgroupReduce: v.SUBGROUP_REDUCE, moeDownCombine: v.MOE_DOWN_COMBINE, prefillAttentionRows: v.PREFILL_ATTENTION_ROWS === '64' ? 64 : 128 };
}

export function gpuOptionsFromEnv(e: NodeJS.ProcessEnv = process.env): GpuOptions {
  return gpuOptions(parseEnv(GPU_ENV, e));
}

export const MODEL_ENV = {
  ROPE_FREQ_PRECISION: env
    .oneOf(ROPE_FREQ_PRECISIONS, DEFAULT_ROPE_FREQ_PRECISION)
    .describe("`checkpoint`: RoPE inverse frequencies rounded to a bf16 checkpoint's dtype, as transformers computes them; `f32`: exact, as DeepSeek's code and vLLM"),
};

export function ropeFreqPrecisionFromEnv(e: NodeJS.ProcessEnv = process.env): RopeFreqPrecision {
  return parseEnv(MODEL_ENV, e).ROPE_FREQ_PRECISION;
}
