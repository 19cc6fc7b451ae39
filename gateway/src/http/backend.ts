// The one seam between the HTTP layer and whatever produces tokens (the NATS → prefill → decode pipeline in
// production). The HTTP layer owns text: tokenizing, detokenizing, stop strings and response shapes; a
// backend only ever sees and returns token ids.
import type { WireLogprobs, WireSampling } from '@latentwire/protocol';

export interface GenerationRequest {
  /** Unique per HTTP request; the response ids (`chatcmpl-…`, `cmpl-…`) are built from it. */
  readonly requestId: string;
  readonly promptIds: readonly number[];
  /** Generated tokens at most (the stop token, if one ends generation, counts as one). */
  readonly maxTokens: number;
  /**
   * temperature 0 = greedy; topK 0 = no top-k limit; topP 1 = no nucleus limit. seed is always set. The
   * optional fields (penalties, logitBias, logprobs: top alternatives per token) are absent when off, never
   * undefined: they go on the wire as they are.
   */
  readonly sampling: WireSampling;
  /**
   * Every id that ends generation with finishReason 'stop': the model's EOS ids (unless ignoreEos) and the
   * request's stop_token_ids. The stop token itself is reported as the last token of the last event.
   */
  readonly stopTokenIds: readonly number[];
  /** The client asked to generate past EOS; EOS ids are then absent from stopTokenIds. */
  readonly ignoreEos: boolean;
  /** With a repetition penalty only: the prompt's token set (promptTokenSet()), for the decode node. */
  readonly promptTokenSet?: Uint8Array;
  /**
   * Choices: this many completions of the prompt, sharing its prefill and its prompt pages (default 1).
   * Choice i samples with seed + i (choiceSampling); its events carry `choice: i`.
   */
  readonly n?: number;
  /** echo with logprobs: the prompt's logprobs with this many top alternatives (first event's promptLogprobs). */
  readonly promptLogprobs?: number;
  /**
   * Set by the backend on a request it resumes after its decode node was lost: the tokens already generated
   * (the tail of promptIds), so the new node's penalties and grammar start where the lost node's were.
   */
  readonly resumeTokens?: readonly number[];
  /**
   * Set by the backend on a request it resumes by replay after its decode node was lost (the request is
   * otherwise the original): the tokens already generated, which the new node feeds through decode steps.
   */
  readonly replayTokens?: readonly number[];
  /** Filled in by the backend as it learns it, for the access line. */
  readonly trace?: GenerationTrace;
}

/** What the backend tells the HTTP layer about a request besides its tokens. */
export interface GenerationTrace {
  /** The decode node that holds the request, once admitted. */
  nodeId?: string;
}

/**
 * The abort reason when the gateway ended a request the backend had not finished yet (a stop string, a
 * stop id, max_tokens): the request finished, it was not cancelled.
 */
export class FinishedByGateway extends Error {
  override readonly name = 'FinishedByGateway';
  constructor(readonly finishReason: 'stop' | 'length') {
    super(`request finished by the gateway (${finishReason})`);
  }
}

/** A generated token's logprob and its top alternatives (token id, logprob), most probable first. */
export type TokenLogprob = WireLogprobs;

export interface GenerationEvent {
  readonly tokens: readonly number[];
  /** When the request asked for logprobs: one per token, in order. */
  readonly logprobs?: readonly TokenLogprob[];
  readonly finishReason?: 'stop' | 'length';
  /** The choice these tokens belong to (requests of n > 1 only); finishReason then ends that choice only. */
  readonly choice?: number;
  /** With request.promptLogprobs, on a choice's first event: prompt token i + 1's logprobs (prompt length - 1 entries). */
  readonly promptLogprobs?: readonly TokenLogprob[];
}

export interface GenerationBackend {
  /**
   * Tokens as they are generated; ends after an event with finishReason (with n > 1: once every choice had
   * its own). Aborting `signal` cancels the request everywhere; aborting choiceSignals[i] (n > 1) ends choice
   * i only. Throws BackendRejection for admission failures.
   */
  generate(req: GenerationRequest, signal: AbortSignal, choiceSignals?: readonly AbortSignal[]): AsyncIterable<GenerationEvent>;
  /** Largest prompt + max_tokens any compatible node can hold now, or undefined when unknown. */
  maxRequestTokens(): number | undefined;
  /** Longest prompt the prefill workers can all take now (their devices' limits), or undefined when unknown. */
  maxPromptTokens?(): number | undefined;
  /** Whether a request sent now can be served, and the facts behind the answer (for GET /ready). */
  readiness(): Promise<BackendReadiness>;
}

export interface BackendReadiness {
  readonly ready: boolean;
  readonly [fact: string]: unknown;
}

/** A request the backend will not run now; the gateway answers with `status` (and Retry-After for 429). */
export class BackendRejection extends Error {
  override readonly name = 'BackendRejection';
  constructor(
    readonly status: 429 | 400 | 503,
    message: string,
    /** OpenAI-style error code, e.g. 'rate_limit_exceeded'. */
    readonly code: string,
    /** Whole seconds; sent as Retry-After with a 429 (and a 503 when given). */
    readonly retryAfterSeconds?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
