// Adapter and device creation through the `webgpu` package (Dawn for Node). Limits are raised to what the
// adapter allows; optional features (shader-f16, subgroups, timestamps, subgroup matrices) are requested
// when present and reported, so kernels can pick variants.
import { create, globals } from 'webgpu';
import { GpuError } from './errors.js';

Object.assign(globalThis, globals);

/**
 * Rows per expert from which routed experts leave the GEMV kernel for the subgroup-matrix one: 1, so batches below
 * one row an expert (V2-Lite: up to 10 tokens) run the one-row-tile GEMV. Measured on the H200: batch 64 (6 rows)
 * 55.0 → 35.2 ms a decode step and batch 16 (1.5 rows) 21.5 → 19.2 ms with the subgroup-matrix kernel (V2-Lite, fp8
 * cache, 1K context, overlapped steps). On the H100 (12-06, bench/results/moe-gemv1.h100.txt) one V2-Lite layer's
 * experts at batch 1: 0.082 ms on the one-row GEMV, 0.106 on the 16 × 64 tiles, 0.118 on the 8-row GEMV; the decode
 * step 5.86 → 5.19 ms (170.7 → 192.8 tokens/s).
 */
export const DEFAULT_MOE_MMA_MIN_ROWS = 1;

/** Tokens from which MoE router logits are a GEMM's (the reasons: ROUTER_GEMM_MIN_TOKENS in kernels/moe). */
export const DEFAULT_ROUTER_GEMM_MIN_TOKENS = 2048;

/**
 * Most K splits of a GEMM whose tiles leave the device's slots idle (1: never split). 8: on the H100 (12-06,
 * bench:decode at V2-Lite, batch 64, 1K context, same run) a step took 25.71 ms (25.47–25.85) against 26.83
 * (26.55–26.84) unsplit; batch 1 has no GEMM to split.
 */
export const DEFAULT_MATMUL_SPLIT_K_MAX = 8;

/**
 * Prefill-sized subgroup-matrix GEMMs and routed experts: their blocks / row tiles taken in groups of this many rows
 * (MATMUL_GROUP_ROWS, MOE_GROUP_TILES; 0: x fastest). See the grouped-order WGSL piece. Measured on an H100
 * (12-07, bench/results/grouped-order.h100.txt, one call): V2-Lite's experts at 4096 tokens, down 1.769 ms a layer
 * tiles first against 1.381 / 1.432 / 1.470 in groups of 4 / 8 / 16 tiles (gate/up 1.660 against 1.633 / 1.623 /
 * 1.633); the 128 × 256 GEMM tile at 4096 rows 1.5–6% faster in groups of 4 or 8 rows of blocks on five of six
 * prefill shapes (4096 × 10944 × 2048: 0.987 against 0.926 / 0.939 ms).
 */
export const DEFAULT_MATMUL_GROUP_ROWS = 4;
export const DEFAULT_MOE_GROUP_TILES = 4;

export interface GpuOptions {
  /** Substring of the adapter's name/vendor/architecture/description to pick among several (Dawn's adapter= flag). */
  readonly adapter?: string;
  /** Extra Dawn toggles, e.g. ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia']. */
  readonly dawnFeatures?: readonly string[];
  /** Dawn toggles turned off, e.g. ['timestamp_quantization'] (needs allow_unsafe_apis): unrounded timestamps. */
  readonly dawnDisabledFeatures?: readonly string[];
  readonly powerPreference?: 'high-performance' | 'low-power';
  /**
   * GPU timestamps (needs timestamp-query): true, per kernel (each dispatch in its own timestamped pass, which
   * adds a pass's cost to every dispatch); 'runs', per run under the label RUN_PROFILE_LABEL (the run's one pass
   * timestamped: a whole decode step's GPU time as it runs unprofiled).
   */
  readonly profile?: boolean | 'runs';
  /** Print every generated WGSL source as it is compiled. */
  readonly dumpWgsl?: boolean;
  /** MATMUL_ENGINE: 'auto' (default) lets matmuls use subgroup matrices where the device has them; 'f32' never. */
  readonly matmulEngine?: 'auto' | 'f32';
  /** MOE_MMA_MIN_ROWS: rows per expert from which routed experts run on subgroup matrices (default 24). */
  readonly moeMmaMinRows?: number;
  /** MATMUL_SPLIT_K_MAX: most K splits of a GEMM whose tiles leave the device's slots idle (default DEFAULT_MATMUL_SPLIT_K_MAX). */
  readonly splitKMax?: number;
  /** MATMUL_GROUP_ROWS: a subgroup-matrix GEMM's blocks in groups of this many rows of blocks where it has more (default DEFAULT_MATMUL_GROUP_ROWS). */
  readonly groupRows?: number;
  /** MOE_GROUP_TILES: the prefill-sized routed experts' row tiles in groups of this many (default DEFAULT_MOE_GROUP_TILES). */
  readonly moeGroupTiles?: number;
  /** MOE_ROUTER_GEMM_MIN_TOKENS: tokens from which router logits are a GEMM's (default the MoE kernels' ROUTER_GEMM_MIN_TOKENS). */
  readonly routerGemmMinTokens?: number;
  /** GEMV_STAGE_INPUT: fused-norm / SiLU GEMVs stage their transformed input rows in workgroup memory (default true). */
  readonly gemvStageInput?: boolean;
  /** SUBGROUP_REDUCE: lane sums and scans by subgroup operations where the adapter allows (GEMVs, head matmul, MoE grouping) (default true). */
  readonly subgroupReduce?: boolean;
  /** MOE_DOWN_COMBINE: one token's MoE combine inside its down GEMV (default true). */
  readonly moeDownCombine?: boolean;
  /** PREFILL_ATTENTION_ROWS: query rows a workgroup of the subgroup-matrix prefill attention takes (default 128 where it fits). */
  readonly prefillAttentionRows?: 64 | 128;
}

const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'] as const;

/** The adapter's identity, and what kernels choose variants by (subgroup sizes, subgroup-matrix configs). */
export interface AdapterInfo {
  readonly vendor: string; readonly architecture: string; readonly device: string; readonly description: string;
  readonly subgroupMinSize?: number; readonly subgroupMaxSize?: number;
  readonly subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[];
}
export interface SubgroupMatrixConfig {
  readonly componentType: string; readonly resultComponentType: string; readonly M: number; readonly N: number; readonly K: number;
}

export interface AcquiredDevice {
  /** The Dawn instance: must stay referenced as long as the device lives, or events stop being processed. */
  readonly instance: GPU;
  readonly device: GPUDevice;
  readonly adapterInfo: AdapterInfo;
  readonly features: ReadonlySet<string>;
}

export async function acquireDevice(opts: GpuOptions): Promise<AcquiredDevice> {
  const flags: string[] = [];
  if (opts.dawnFeatures && opts.dawnFeatures.length > 0) flags.push(`enable-dawn-features=${opts.dawnFeatures.join(',')}`);
  if (opts.dawnDisabledFeatures && opts.dawnDisabledFeatures.length > 0) flags.push(`disable-dawn-features=${opts.dawnDisabledFeatures.join(',')}`);
  if (opts.adapter) flags.push(`adapter=${opts.adapter}`);
  let adapter: GPUAdapter | null = null;
  let instance: GPU;
  try {
    instance = create(flags);
    adapter = await instance.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  } catch (cause) {
    throw new GpuError(`WebGPU could not be initialised (flags ${JSON.stringify(flags)})`, { cause });
  }
  if (!adapter) {
    throw new GpuError(
      'No WebGPU adapter found. On a machine without a GPU install Mesa >= 23 lavapipe ' +
        '(Debian 12: `apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`, or run infra/setup.sh); ' +
        'on NVIDIA set VK_DRIVER_FILES to the driver ICD json.' +
        (opts.adapter ? ` No adapter matched WEBGPU_ADAPTER="${opts.adapter}".` : ''),
    );
  }
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const key of [
    'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension',
    'maxStorageBuffersPerShaderStage',
  ] as const) {
    requiredLimits[key] = adapter.limits[key];
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'latentwire' });
  const info = adapter.info;
  return {
    instance,
    device,
    adapterInfo: {
      vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
      subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize,
      // copied from the adapter (device.adapterInfo may not list them); plain objects, so they print
      subgroupMatrixConfigs: [...((info as { subgroupMatrixConfigs?: Iterable<SubgroupMatrixConfig> }).subgroupMatrixConfigs ?? [])].map((c) => ({
        componentType: String(c.componentType), resultComponentType: String(c.resultComponentType), M: Number(c.M), N: Number(c.N), K: Number(c.K),
      })),
    },
    features: new Set([...device.features]),
  };
}
