// The decode engine's knobs (the decode node and the CLI read them), all environment variables, validated at
// start-up (a bad value names the variable), then sized against the model and checked against the adapter
// right after the device is acquired, so an impossible size is a ConfigError naming its variable too.
import { ConfigError, env, parseEnv, type EnvOf } from '@latentwire/protocol';
import { KV_DTYPES, parseKvDtype, latentKvLayout, type KvDtype } from '@latentwire/protocol';
import type { MlaConfig } from '@latentwire/model';
import { kvPool } from './engine/latent-kv-cache.js';
import { groupedDecodePlan, MAX_DECODE_SPLITS, type MatrixCapabilities } from './kernels/grouped-decode-attention/index.js';

export const ATTENTION_ENGINES = ['auto', 'f32', 'subgroup-matrix'] as const;
export type DecodeAttentionEngine = (typeof ATTENTION_ENGINES)[number];

export const DECODE_ENV = {
  PAGE_SIZE: env.int(64, 1, 4096).describe("tokens per KV page (FlashMLA's 64)"),
  KV_CACHE_DTYPE: env
    .mapped<KvDtype>('fp8_e4m3', parseKvDtype, `expected one of ${KV_DTYPES.join(', ')} (or fp8 = fp8_e4m3)`)
    .describe('`fp8_e4m3` (per-token scale, rope in bf16), `fp8_e5m2`, `bf16`, `f32`'),
  KV_CACHE_PAGES: env.int(0, 0).describe('pages per layer; 0 = as many as `KV_CACHE_MIB` holds'),
  KV_CACHE_MIB: env.int(1024, 1).describe('GPU memory for the cache (all layers) when `KV_CACHE_PAGES` is 0; must fit the adapter\'s bindings'),
  MAX_BATCH: env.int(64, 1, 1024).describe('most sequences decoded together in one step'),
  MAX_WAITING: env.int(256, 0).describe('requests queued for a batch slot before new ones are refused'),
  MAX_CONTEXT: env.int(0, 0).describe("longest sequence; 0 = the model's `max_position_embeddings`"),
  DECODE_HEAD_GROUP: env.int(0, 0, 128).describe('heads per workgroup of the grouped kernel; 0 = min(heads, 32) on subgroup matrices (at most 32: above 16 two row tiles share each staged cache tile), min(heads, 8) on the portable kernel'),
  DECODE_ATTENTION_ENGINE: env
    .oneOf(ATTENTION_ENGINES, 'auto')
    .describe('grouped kernel: `auto` (tensor cores through subgroup matrices where the adapter has them), `f32` (portable), `subgroup-matrix` (refused at start where impossible)'),
  DECODE_KV_SPLITS: env.int(0, 0, MAX_DECODE_SPLITS).describe('KV splits of the grouped kernel; 0 = chosen per step from batch and context'),
  RESERVATION_LEASE_MS: env.int(30_000, 1).describe('reserved pages wait this long for their KV before they return'),
};

export interface DecodeSettings {
  readonly pageSize: number;
  readonly kvDtype: KvDtype;
  readonly numPages: number;
  readonly maxBatch: number;
  readonly maxWaiting: number;
  readonly maxContext: number;
  readonly headGroup: number | undefined;
  readonly attentionEngine: DecodeAttentionEngine;
  readonly kvSplits: number;
  readonly leaseMs: number;
}

/** The adapter limits an impossible size is checked against. */
export type DecodeDeviceLimits = Pick<GPUSupportedLimits,
  'maxStorageBufferBindingSize' | 'maxBufferSize' | 'maxComputeWorkgroupStorageSize' | 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX'>;

/** The grouped kernel's plan inputs for an engine setting: the adapter's matrix capabilities unless `f32`. */
export function attentionEngineChoice(engine: DecodeAttentionEngine, matrix: MatrixCapabilities | undefined): {
  readonly matrix?: MatrixCapabilities; readonly engine?: 'f32' | 'subgroup-matrix';
} {
  if (engine === 'f32') return { engine: 'f32' };
  return engine === 'auto' ? { matrix } : { matrix, engine };
}

/** Parses DECODE_ENV from `e`, then as decodeSettingsFrom (tests and embedders; a process parses once at start). */
export function decodeSettings(cfg: MlaConfig, e: NodeJS.ProcessEnv = process.env, overrides: Partial<DecodeSettings> = {}): DecodeSettings {
  return decodeSettingsFrom(cfg, parseEnv(DECODE_ENV, e), overrides);
}

/**
 * Sizes the cache for `cfg` from parsed DECODE_ENV values; `overrides` (CLI flags) win. With `limits` (the
 * adapter's, right after acquiring it), a pool that cannot be bound or a head group that does not fit the
 * workgroup memory is a ConfigError naming the variable that asked for it.
 */
export function decodeSettingsFrom(
  cfg: MlaConfig, v: EnvOf<typeof DECODE_ENV>, overrides: Partial<DecodeSettings> = {}, limits?: DecodeDeviceLimits,
  matrix?: MatrixCapabilities,
): DecodeSettings {
  const kvDtype = overrides.kvDtype ?? v.KV_CACHE_DTYPE;
  const pageSize = overrides.pageSize ?? v.PAGE_SIZE;
  const layout = latentKvLayout({ kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize, dtype: kvDtype });
  const numPages = overrides.numPages ?? (v.KV_CACHE_PAGES > 0
    ? v.KV_CACHE_PAGES
    : Math.max(1, Math.floor((v.KV_CACHE_MIB * 2 ** 20) / (layout.pageBytes * cfg.numLayers))));
  const s: DecodeSettings = Object.freeze({
    pageSize, kvDtype, numPages,
    maxBatch: overrides.maxBatch ?? v.MAX_BATCH,
    maxWaiting: overrides.maxWaiting ?? v.MAX_WAITING,
    maxContext: overrides.maxContext ?? (v.MAX_CONTEXT > 0 ? Math.min(v.MAX_CONTEXT, cfg.maxPositionEmbeddings) : cfg.maxPositionEmbeddings),
    headGroup: overrides.headGroup ?? (v.DECODE_HEAD_GROUP > 0 ? v.DECODE_HEAD_GROUP : undefined),
    attentionEngine: overrides.attentionEngine ?? v.DECODE_ATTENTION_ENGINE,
    kvSplits: overrides.kvSplits ?? v.DECODE_KV_SPLITS,
    leaseMs: overrides.leaseMs ?? v.RESERVATION_LEASE_MS,
  });
  if (!limits) return s;
  // The same functions the cache and the kernel plan use, asked before anything is allocated.
  let poolBindings: number;
  try {
    poolBindings = kvPool(layout, numPages, Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)).bufferPages.length;
  } catch (cause) {
    const [name, value] = overrides.numPages !== undefined ? ['numPages', numPages]
      : v.KV_CACHE_PAGES > 0 ? ['KV_CACHE_PAGES', v.KV_CACHE_PAGES] : ['KV_CACHE_MIB', v.KV_CACHE_MIB];
    throw ConfigError.of(name, String(value), `does not fit this adapter: ${(cause as Error).message}`, { cause });
  }
  try {
    groupedDecodePlan({
      kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, dtype: kvDtype, pageSize, heads: cfg.numHeads, limits,
      headGroup: s.headGroup, poolBindings, ...attentionEngineChoice(s.attentionEngine, matrix),
    });
  } catch (cause) {
    const [name, value] = s.attentionEngine === 'subgroup-matrix' && /subgroup-matrix/.test((cause as Error).message)
      ? ['DECODE_ATTENTION_ENGINE', s.attentionEngine] : ['DECODE_HEAD_GROUP', String(v.DECODE_HEAD_GROUP)];
    throw ConfigError.of(name, value, `does not fit this adapter: ${(cause as Error).message}`, { cause });
  }
  return s;
}
