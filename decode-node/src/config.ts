// The decode node's knobs, all environment variables, validated at start-up (a bad value names the variable).
import { env, parseEnv, type EnvOf } from '@latentwire/protocol';
import { parseKvDtype, latentKvLayout, type KvDtype } from '@latentwire/protocol';
import type { MlaConfig } from '@latentwire/model';

export const DECODE_ENV = {
  /** Tokens per KV page (FlashMLA uses 64). */
  PAGE_SIZE: env.int(64, 1, 4096),
  /** Latent cache dtype: fp8_e4m3 (per-token scale, rope in bf16), fp8_e5m2, bf16, f32. */
  KV_CACHE_DTYPE: env.str('fp8_e4m3'),
  /** Pages per layer pool; 0 = as many as KV_CACHE_MIB holds. */
  KV_CACHE_PAGES: env.int(0, 0),
  /** GPU memory for the KV cache, all layers, when KV_CACHE_PAGES is 0. */
  KV_CACHE_MIB: env.int(1024, 1),
  /** Most sequences decoded together in one step. */
  MAX_BATCH: env.int(64, 1, 1024),
  /** Requests queued for pages or a batch slot before new ones are turned away. */
  MAX_WAITING: env.int(256, 0),
  /** Longest sequence (prompt + output); 0 = the model's max_position_embeddings. */
  MAX_CONTEXT: env.int(0, 0),
  /** Heads per workgroup of the grouped decode kernel; 0 = min(heads, 8). */
  DECODE_HEAD_GROUP: env.int(0, 0, 128),
  /** KV splits of the decode kernel; 0 = chosen per step from batch and context so the GPU is full. */
  DECODE_KV_SPLITS: env.int(0, 0, 64),
  /** How long reserved pages wait for their prefill KV before they return to the pool (ms). */
  RESERVATION_LEASE_MS: env.int(30_000, 1),
};

export interface DecodeSettings {
  readonly pageSize: number;
  readonly kvDtype: KvDtype;
  readonly numPages: number;
  readonly maxBatch: number;
  readonly maxWaiting: number;
  readonly maxContext: number;
  readonly headGroup: number | undefined;
  readonly kvSplits: number;
  readonly leaseMs: number;
}

/** Parses DECODE_ENV and sizes the cache for `cfg`; `overrides` (CLI flags) win over the environment. */
export function decodeSettings(cfg: MlaConfig, e: NodeJS.ProcessEnv = process.env, overrides: Partial<DecodeSettings> = {}): DecodeSettings {
  const v: EnvOf<typeof DECODE_ENV> = parseEnv(DECODE_ENV, e);
  const kvDtype = overrides.kvDtype ?? parseKvDtype(v.KV_CACHE_DTYPE);
  const pageSize = overrides.pageSize ?? v.PAGE_SIZE;
  const layout = latentKvLayout({ kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize, dtype: kvDtype });
  const numPages = overrides.numPages ?? (v.KV_CACHE_PAGES > 0
    ? v.KV_CACHE_PAGES
    : Math.max(1, Math.floor((v.KV_CACHE_MIB * 2 ** 20) / (layout.pageBytes * cfg.numLayers))));
  return {
    pageSize, kvDtype, numPages,
    maxBatch: overrides.maxBatch ?? v.MAX_BATCH,
    maxWaiting: overrides.maxWaiting ?? v.MAX_WAITING,
    maxContext: overrides.maxContext ?? (v.MAX_CONTEXT > 0 ? Math.min(v.MAX_CONTEXT, cfg.maxPositionEmbeddings) : cfg.maxPositionEmbeddings),
    headGroup: overrides.headGroup ?? (v.DECODE_HEAD_GROUP > 0 ? v.DECODE_HEAD_GROUP : undefined),
    kvSplits: overrides.kvSplits ?? v.DECODE_KV_SPLITS,
    leaseMs: overrides.leaseMs ?? v.RESERVATION_LEASE_MS,
  };
}
