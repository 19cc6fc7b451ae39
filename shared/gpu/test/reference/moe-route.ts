// Expert routing (DeepSeekMoE gate) for one token, as transformers 5 does it.
//
// V2 (`DeepseekV2Moe.route_tokens_to_experts`): scores = softmax(logits) (HF ignores scoring_func and always
// uses softmax). `greedy`: top-k of the scores. `group_limited_greedy`: a group's score is its best expert's
// score; keep the topk_group best groups, zero the other experts' scores, take top-k. Weights are the chosen
// softmax scores times routed_scaling_factor, never renormalized: HF's V2 ignores norm_topk_prob (DeepSeek's own
// V2 code would renormalize *instead of* scaling when norm_topk_prob is true, a combination no V2 checkpoint
// uses).
//
// V3 (`DeepseekV3MoE.route_tokens_to_experts`, `noaux_tc`): scores = sigmoid(logits); choice = scores +
// e_score_correction_bias; a group's score is the sum of its two best choice values; keep topk_group groups,
// zero the rest, take top-k of the choice values. Weights are the *unbiased* sigmoid scores of the chosen
// experts, divided by (their sum + 1e-20) when norm_topk_prob, then times routed_scaling_factor.
//
// Masked experts get 0, not -inf, as in transformers; a 0 could only be chosen if a kept V3 expert's biased
// score were negative. Ties go to the lower expert index (torch.topk leaves them unspecified).
import type { MoeConfig } from '@latentwire/model';
import { sigmoid, softmax } from './basic-ops.js';

export interface RouteChoice {
  /** Chosen experts, best first. */
  readonly expertIds: readonly number[];
  /** Each chosen expert's multiplier on its output (routed_scaling_factor included). */
  readonly weights: readonly number[];
}

/** Indices of the k largest values, largest first; ties go to the lower index. */
export function topK(values: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b]! - values[a]! || a - b);
  return idx.slice(0, k);
}

/** Zeroes the experts outside the topk_group best groups (group score given per group). */
function keepBestGroups(moe: MoeConfig, scores: Float64Array, groupScore: (members: Float64Array) => number): Float64Array {
  const perGroup = moe.nRoutedExperts / moe.nGroup;
  if (!Number.isInteger(perGroup)) throw new RangeError(`${moe.nRoutedExperts} experts do not split into ${moe.nGroup} groups`);
  const groupScores = Array.from({ length: moe.nGroup }, (_, g) => groupScore(scores.subarray(g * perGroup, (g + 1) * perGroup)));
  const kept = new Set(topK(groupScores, moe.topkGroup));
  return scores.map((s, e) => (kept.has(Math.floor(e / perGroup)) ? s : 0));
}

function routeV2(moe: MoeConfig, logits: Float64Array): RouteChoice {
  const probs = softmax(logits);
  const candidates = moe.topkMethod === 'group_limited_greedy' ? keepBestGroups(moe, probs, (m) => Math.max(...m)) : probs;
  const expertIds = topK(candidates, moe.numExpertsPerTok);
  return { expertIds, weights: expertIds.map((e) => candidates[e]! * moe.routedScalingFactor) };
}

function routeV3(moe: MoeConfig, logits: Float64Array, bias: Float64Array): RouteChoice {
  const scores = logits.map(sigmoid);
  const choice = scores.map((s, e) => s + bias[e]!);
  const sumOfBestTwo = (m: Float64Array) => {
    if (m.length < 2) throw new RangeError('noaux_tc needs at least 2 experts per group');
    const [a, b] = topK(m, 2);
    return m[a!]! + m[b!]!;
  };
  const candidates = keepBestGroups(moe, choice, sumOfBestTwo);
  const expertIds = topK(candidates, moe.numExpertsPerTok);
  let weights = expertIds.map((e) => scores[e]!);
  if (moe.normTopkProb) {
    const denominator = weights.reduce((a, b) => a + b, 0) + 1e-20;
    weights = weights.map((w) => w / denominator);
  }
  return { expertIds, weights: weights.map((w) => w * moe.routedScalingFactor) };
}

/**
 * Routes one token from its router logits (gate.weight · hidden, length n_routed_experts). `bias` is the V3
 * e_score_correction_bias (required for noaux_tc, ignored otherwise).
 */
export function moeRoute(moe: MoeConfig, logits: Float64Array, bias: Float64Array | null): RouteChoice {
  if (logits.length !== moe.nRoutedExperts) throw new RangeError(`${logits.length} router logits for ${moe.nRoutedExperts} experts`);
  if (moe.topkMethod === 'noaux_tc') {
    if (moe.scoringFunc !== 'sigmoid') throw new Error('noaux_tc routing is defined with sigmoid scoring');
    if (!bias) throw new Error('noaux_tc routing needs e_score_correction_bias');
    return routeV3(moe, logits, bias);
  }
  if (moe.scoringFunc !== 'softmax') throw new Error(`${moe.topkMethod} routing is defined with softmax scoring`);
  return routeV2(moe, logits);
}
