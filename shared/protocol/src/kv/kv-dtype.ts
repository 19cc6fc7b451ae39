// The dtype the decode node stores latent KV rows in (env KV_CACHE_DTYPE). How each one lays out a row and
// its scales is in latent-layout.ts.

export const KV_DTYPES = ['fp8_e4m3', 'fp8_e5m2', 'bf16', 'f32'] as const;
export type KvDtype = (typeof KV_DTYPES)[number];

export class KvDtypeError extends Error {
  override readonly name = 'KvDtypeError';
}

/** Parses a KV_CACHE_DTYPE value; a few common spellings (fp8 = e4m3, as vLLM's `fp8`) are accepted. */
export function parseKvDtype(s: string): KvDtype {
  const v = s.trim().toLowerCase();
  if ((KV_DTYPES as readonly string[]).includes(v)) return v as KvDtype;
  const alias: Record<string, KvDtype> = {
    fp8: 'fp8_e4m3', e4m3: 'fp8_e4m3', fp8_e4m3fn: 'fp8_e4m3', float8_e4m3fn: 'fp8_e4m3',
    e5m2: 'fp8_e5m2', float8_e5m2: 'fp8_e5m2', bfloat16: 'bf16', float32: 'f32', fp32: 'f32',
  };
  const a = alias[v];
  if (a) return a;
  throw new KvDtypeError(`KV_CACHE_DTYPE=${JSON.stringify(s)}: expected one of ${KV_DTYPES.join(', ')} (or fp8 = fp8_e4m3)`);
}
