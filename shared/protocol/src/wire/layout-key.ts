// Reads a latent layout key (`latentLayoutKey`'s output, e.g. `latent-v1/fp8_e4m3/r512+64/p64`) back into the
// layout it names, so a kv-chunk's rowBytes, dtype and pageSize can be checked against the key it carries.
import { KV_DTYPES, type KvDtype } from '../kv/kv-dtype.js';
import { LATENT_LAYOUT_VERSION, latentKvLayout, latentLayoutKey, type LatentKvLayout } from '../kv/latent-layout.js';

const KEY = /^latent-v(\d{1,4})\/([a-z0-9_]{1,16})\/r(\d{1,6})\+(\d{1,6})\/p(\d{1,6})$/;

/**
 * Keys already parsed (every kv-chunk asks twice: schema and size check). Bounded, since keys come from
 * peers; a node sees one or two layouts, so the bound is never reached in practice.
 */
const PARSED = new Map<string, LatentKvLayout | undefined>();
const PARSED_MAX = 64;

/** The layout a key names, or undefined unless `latentLayoutKey` of that layout gives back the same key. */
export function parseLatentLayoutKey(key: string): LatentKvLayout | undefined {
  if (PARSED.has(key)) return PARSED.get(key);
  const layout = parse(key);
  if (PARSED.size >= PARSED_MAX) PARSED.delete(PARSED.keys().next().value!);
  PARSED.set(key, layout);
  return layout;
}

function parse(key: string): LatentKvLayout | undefined {
  const m = KEY.exec(key);
  if (!m || Number(m[1]) !== LATENT_LAYOUT_VERSION) return undefined;
  const dtype = m[2] as KvDtype;
  if (!(KV_DTYPES as readonly string[]).includes(dtype)) return undefined;
  let layout: LatentKvLayout;
  try {
    layout = latentKvLayout({ dtype, kvLoraRank: Number(m[3]), ropeDim: Number(m[4]), pageSize: Number(m[5]) });
  } catch {
    return undefined; // sizes out of latentKvLayout's range
  }
  // Round trip: rejects spellings the formatter never writes (leading zeros), so one layout has one key.
  return latentLayoutKey(layout) === key ? layout : undefined;
}
