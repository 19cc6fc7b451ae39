// The prefill job: what the gateway enqueues on BullMQ (Redis) after a decode node reserved the pages, and
// what a prefill worker validates before touching the GPU. It carries what the prefill needs and no more:
// the prompt, where its KV goes, and the sampling of the completion's first token. The rest of the
// generation (max tokens, stop ids) went to the decode node with the reservation. BullMQ stores job data as JSON, so this is a
// JSON-safe object (token ids as a number array) with the same field rules as the NATS messages.
import { z } from 'zod';
import { label, layoutKey, tokenId, wireId } from './fields.js';
import { MAX_WIRE_CHOICES, MAX_WIRE_TOP_LOGPROBS, wireSamplingSchema, type WireSampling } from './messages/sampling.js';
import { WireError } from './errors.js';
import { MAX_RESUME_TOKENS } from './messages/reserve.js';

/** Longest prompt a job may carry (DeepSeek-V3's 128K context, with room). */
export const MAX_PROMPT_TOKENS = 1 << 18;

export interface PrefillJob {
  readonly v: 2;
  readonly requestId: string;
  /** The decode node holding the reservation: the KV goes to its subjects. */
  readonly decodeNodeId: string;
  readonly promptIds: readonly number[];
  /** Sampling of the completion's first token (counter 0); the decode node samples the rest. */
  readonly sampling: WireSampling;
  /** The reserving node's cache layout: the prefill quantizes into it. */
  readonly layoutKey: string;
  readonly fingerprint: string;
  /** Epoch ms after which the reservation is gone: a job that starts later fails at once. */
  readonly deadline: number;
  /** Choices (n > 1): sample n first tokens from the last position's logits, choice i with seed + i. Absent = 1. */
  readonly n?: number;
  /** Prompt logprobs (echo with logprobs), with this many top alternatives each; absent = none. */
  readonly promptLogprobs?: number;
  /**
   * A request resumed after its decode node was lost: the tokens it had generated there, which end promptIds.
   * The first token is sampled as if they had been generated here (the penalties count them as output, the
   * grammar's state has advanced over them). Absent = none. Only a resume the gateway prefills again (past
   * RESUME_REPLAY_MAX_TOKENS); a replayed resume's job is the original request's (its prompt, its sampling):
   * the decode node discards that first token and replays the generated ones itself (Reserve.replayTokens).
   */
  readonly resumeTokens?: readonly number[];
}

const schema = z.object({
  v: z.literal(2),
  requestId: wireId,
  decodeNodeId: wireId,
  promptIds: z.array(tokenId).min(1).max(MAX_PROMPT_TOKENS),
  sampling: wireSamplingSchema,
  layoutKey,
  fingerprint: label,
  deadline: z.number().min(0),
  n: z.number().int().min(1).max(MAX_WIRE_CHOICES).optional(),
  promptLogprobs: z.number().int().min(0).max(MAX_WIRE_TOP_LOGPROBS).optional(),
  resumeTokens: z.array(tokenId).max(MAX_RESUME_TOKENS).optional(),
}).superRefine((j, ctx) => {
  const r = j.resumeTokens;
  if (!r || r.length === 0) return;
  const at = j.promptIds.length - r.length;
  if (at < 1) ctx.addIssue({ code: 'custom', path: ['resumeTokens'], message: `${r.length} resume tokens in a prompt of ${j.promptIds.length}` });
  else if (r.some((id, i) => j.promptIds[at + i] !== id)) ctx.addIssue({ code: 'custom', path: ['resumeTokens'], message: 'must equal the tail of promptIds' });
  if ((j.n ?? 1) > 1) ctx.addIssue({ code: 'custom', path: ['resumeTokens'], message: 'not with n > 1 (each choice resumes on its own)' });
});

/** Validates job data read back from Redis (a job is data from the outside like any message). */
export function parsePrefillJob(data: unknown): PrefillJob {
  const r = schema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new WireError('invalid', `prefill job: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data as PrefillJob;
}

/** The BullMQ queue prefill jobs go through, per subject prefix so test clusters don't share it. */
export function prefillQueueName(prefix: string): string {
  return `${prefix.replace(/\./g, '-')}-prefill`;
}
