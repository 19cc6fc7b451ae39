// Sampling settings as they cross the wire: the reserve carries them to the decode node, the prefill job
// to the prefill worker (which samples the completion's first token).
import { z } from 'zod';
import { u32 } from '../fields.js';

/** Same meaning and ranges as the decode node's SamplingParams. */
export interface WireSampling {
  /** 0 = greedy; in [0, 100]. */
  readonly temperature: number;
  /** 0 = no top-k cut. */
  readonly topK: number;
  /** In (0, 1]. */
  readonly topP: number;
  /** u32 PRNG seed. */
  readonly seed: number;
}

export const MAX_STOP_TOKENS = 256;

/** WireSampling's ranges, for every message and job that carries sampling settings. */
export const wireSamplingSchema = z.object({
  temperature: z.number().min(0).max(100),
  topK: u32,
  topP: z.number().gt(0).max(1),
  seed: u32,
});
