// generation_config.json: the checkpoint's stop ids and sampling defaults. Optional; absent keys take
// transformers' GenerationConfig defaults, and absent stop ids fall back to config.json's.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseOrThrow } from './config-schema.js';
import { readJsonFile } from './json-file.js';
import type { MlaConfig } from './mla-config.js';

export interface GenerationConfig {
  readonly bosTokenId: number | null;
  /** Generation stops at any of these. */
  readonly eosTokenIds: readonly number[];
  /** false = greedy decoding is the checkpoint's default. */
  readonly doSample: boolean;
  readonly temperature: number;
  readonly topP: number;
  /** 0 = no top-k limit. */
  readonly topK: number;
  readonly repetitionPenalty: number;
  readonly maxNewTokens: number | null;
  /** Whether generation_config.json existed. */
  readonly fromFile: boolean;
}

const tokenId = z.number().int().nonnegative();
const schema = z.object({
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
  do_sample: z.boolean().default(false),
  temperature: z.number().nonnegative().nullish(),
  top_p: z.number().gt(0).lte(1).nullish(),
  top_k: z.number().int().nonnegative().nullish(),
  repetition_penalty: z.number().positive().nullish(),
  max_new_tokens: z.number().int().positive().nullish(),
});

export function normalizeGenerationConfig(raw: unknown, model: MlaConfig, fromFile: boolean, source = 'generation_config.json'): GenerationConfig {
  const g = parseOrThrow(schema, raw, source);
  const eos = g.eos_token_id;
  return {
    bosTokenId: g.bos_token_id ?? model.bosTokenId,
    eosTokenIds: eos === undefined || eos === null ? model.eosTokenIds : Array.isArray(eos) ? eos : [eos],
    doSample: g.do_sample,
    // transformers' GenerationConfig defaults.
    temperature: g.temperature ?? 1.0,
    topP: g.top_p ?? 1.0,
    topK: g.top_k ?? 50,
    repetitionPenalty: g.repetition_penalty ?? 1.0,
    maxNewTokens: g.max_new_tokens ?? null,
    fromFile,
  };
}

/** Reads `dir/generation_config.json` if present, else derives everything from config.json and defaults. */
export function loadGenerationConfig(dir: string, model: MlaConfig): GenerationConfig {
  const file = join(dir, 'generation_config.json');
  if (!existsSync(file)) return normalizeGenerationConfig({}, model, false);
  return normalizeGenerationConfig(readJsonFile(file), model, true, file);
}
