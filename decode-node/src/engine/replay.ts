// Replaying a resumed request (EngineRequest.replayTokens): when a decode node is lost, the gateway resumes
// each of its requests elsewhere with the k tokens already sent, t_0 .. t_{k-1}. Prefilling them again with
// the prompt would write their KV from full-precision attention, where the lost node's decode steps attended
// over the quantized cache: on FP8 the next token could differ. So the prefill covers only the prompt, and
// the sequence then runs the steps the lost node ran, teacher-forced:
//   1. its first output is t_0 (the prefill's sample is discarded);
//   2. the step feeding t_i (i < k - 1) writes t_i's KV at its position; what it samples is replaced by
//      t_{i+1} and sent nowhere (no logit work, counts row or grammar mask: nothing uses that sample);
//   3. the step feeding t_{k-1} samples t_k with the sampler's counter at k, the penalties' counts over the
//      prompt and t_0 .. t_{k-1}, the grammar's state after them: the first token sent. From there on the
//      sequence is an ordinary one.
// Each replay step is one row of the engine's normal batch, so the other streams keep flowing, and the
// replayed token is known on the CPU, so a replaying row never waits for the step before it.
// Bit-exactness: each row's KV and logits must come out as the lost node's did. On lavapipe every kernel is
// batch-size invariant, so they do whatever the batch around the row. A GPU's tensor-core GEMMs pick their
// kernels (tile, split-K) by batch size, and the KV split count follows batch and context
// (chooseDecodeSplits): there the replay is exact only where the steps take the same batch path as the lost
// node's (a fixed DECODE_KV_SPLITS removes the second cause, not the first).
import type { Sequence } from '../scheduler/index.js';
import type { EngineRequest } from './engine.js';

/** What replay needs of a request (a reserve has these too). */
export type ReplayRequest = Pick<EngineRequest, 'id' | 'maxTokens' | 'replayTokens' | 'resumeTokens' | 'eosTokenIds' | 'stopTokenIds'>;

/** RangeError for replay tokens a request cannot have: a stream that stopped or ran out is not resumed. */
export function checkReplay(req: ReplayRequest, vocab: number): void {
  const replay = req.replayTokens ?? [];
  if (replay.length === 0) return;
  if (req.resumeTokens?.length) throw new RangeError(`${req.id}: replayTokens and resumeTokens (a resume replays or prefills again, not both)`);
  if (replay.length >= req.maxTokens) throw new RangeError(`${req.id}: ${replay.length} replay tokens leave none of max_tokens ${req.maxTokens} to generate`);
  const bad = replay.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
  if (bad !== undefined) throw new RangeError(`${req.id}: replay token ${bad} outside the vocabulary [0, ${vocab})`);
  const stops = new Set([...(req.eosTokenIds ?? []), ...(req.stopTokenIds ?? [])]);
  const stop = replay.find((id) => stops.has(id));
  if (stop !== undefined) throw new RangeError(`${req.id}: replay token ${stop} is a stop token (the stream had ended)`);
}

/** The token output `index` of the request must be (a replay token), or undefined where it is sampled. */
export function forcedToken(req: ReplayRequest, index: number): number | undefined {
  const replay = req.replayTokens;
  return replay && index < replay.length ? replay[index] : undefined;
}

/** One sequence's row of a decode step. */
export interface StepRole {
  /** The token fed from the host (0 where fromPrevious names a row). */
  readonly token: number;
  /** The row of the previous step whose sample it feeds (still on the GPU), or -1. */
  readonly fromPrevious: number;
  readonly position: number;
  /** The output index of the token this step samples (its sampler counter, past counterStart). */
  readonly sampledIndex: number;
  /** A replay step's: its sample is replaced by the next replay token. */
  readonly discarded: boolean;
}

/**
 * The row of `seq` in the next step; prevRow is its row in the step still running (-1 if it is not in it):
 * it then feeds that step's sample one position further, or its next replay token where it replays.
 */
export function stepRole(req: ReplayRequest, seq: Sequence, prevRow: number): StepRole {
  const inPrev = prevRow !== -1;
  const fed = seq.outputTokens.length - 1 + (inPrev ? 1 : 0);
  const forced = forcedToken(req, fed);
  return {
    token: forced ?? (inPrev ? 0 : seq.outputTokens[fed]!),
    fromPrevious: inPrev && forced === undefined ? prevRow : -1,
    position: seq.cachedTokens + (inPrev ? 1 : 0),
    sampledIndex: fed + 1,
    discarded: forcedToken(req, fed + 1) !== undefined,
  };
}
