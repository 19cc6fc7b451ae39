// RoPE settings come in two spellings: transformers 5 writes `rope_parameters: {rope_type, rope_theta, ...}`,
// Hub checkpoints write top-level `rope_theta` plus `rope_scaling: {type | rope_type, factor, ...}` (or null).
// Both become one { ropeTheta, ropeScaling }.
import { z } from 'zod';
import { ModelLoadError } from './errors.js';
import type { RopeScaling } from './mla-config.js';
import { parseOrThrow } from './config-schema.js';

const yarnSchema = z.object({
  factor: z.number().min(1),
  original_max_position_embeddings: z.number().int().positive().nullish(),
  // transformers reads these with `or 32` / `or 1`, so null or 0 mean the default too.
  beta_fast: z.number().nonnegative().nullish(),
  beta_slow: z.number().nonnegative().nullish(),
  mscale: z.number().nonnegative().nullish(),
  mscale_all_dim: z.number().nonnegative().nullish(),
  // An explicit attention_factor overrides the mscale formula; MlaConfig has no place for it, so refuse it.
  attention_factor: z.never({ error: 'is not supported (latentwire derives attention scaling from mscale)' }).optional(),
});

export interface RopeSettings {
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
}

export function parseRope(raw: Record<string, unknown>, maxPositionEmbeddings: number, defaultTheta: number, source: string): RopeSettings {
  const fromParams = raw['rope_parameters'] !== undefined && raw['rope_parameters'] !== null;
  const key = fromParams ? 'rope_parameters' : 'rope_scaling';
  const params = raw[key] ?? {};
  if (typeof params !== 'object' || Array.isArray(params)) {
    throw new ModelLoadError(`${source}: key "${key}" must be an object or null (got ${JSON.stringify(params)})`);
  }
  const p = params as Record<string, unknown>;
  if (p['rope_type'] !== undefined && p['type'] !== undefined && p['rope_type'] !== p['type']) {
    throw new ModelLoadError(`${source}: key "${key}" has both rope_type ${JSON.stringify(p['rope_type'])} and type ${JSON.stringify(p['type'])}`);
  }
  const type = p['rope_type'] ?? p['type'] ?? 'default';
  const thetaRaw = p['rope_theta'] ?? raw['rope_theta'] ?? defaultTheta;
  const thetaKey = p['rope_theta'] !== undefined ? `${key}.rope_theta` : 'rope_theta';
  if (typeof thetaRaw !== 'number' || !(thetaRaw > 0)) {
    throw new ModelLoadError(`${source}: key "${thetaKey}" must be a positive number (got ${JSON.stringify(thetaRaw)})`);
  }
  if (type === 'default') return { ropeTheta: thetaRaw, ropeScaling: { kind: 'default' } };
  if (type !== 'yarn') {
    throw new ModelLoadError(
      `${source}: key "${key}.${p['rope_type'] !== undefined ? 'rope_type' : 'type'}" is ${JSON.stringify(type)}; ` +
        'latentwire supports RoPE types "default" and "yarn"',
    );
  }
  const y = parseOrThrow(yarnSchema, p, source, `${key}.`);
  return {
    ropeTheta: thetaRaw,
    ropeScaling: {
      kind: 'yarn',
      factor: y.factor,
      // transformers' standardize_rope_params fills this from max_position_embeddings when absent.
      originalMaxPositionEmbeddings: y.original_max_position_embeddings ?? maxPositionEmbeddings,
      betaFast: y.beta_fast || 32,
      betaSlow: y.beta_slow || 1,
      mscale: y.mscale ?? 0,
      mscaleAllDim: y.mscale_all_dim ?? 0,
    },
  };
}
