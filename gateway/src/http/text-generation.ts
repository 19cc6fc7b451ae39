// Backend token events → text deltas for one request. Per token:
//   1. count it; at max tokens the request is over ('length') even if a backend overran;
//   2. a stop token id ends it ('stop') and is counted but never turned into text;
//   3. otherwise the incremental detokenizer releases only complete UTF-8 characters;
//   4. the stop matcher holds back text that could begin a stop string and cuts at the first match ('stop').
// When the gateway ends a request the backend has not finished (stop string, stop id, overrun, client
// gone, consumer returned early), it aborts the backend's signal so the request is cancelled everywhere.
import type { Tokenizer } from '@latentwire/model';
import { FinishedByGateway, type GenerationBackend, type GenerationEvent, type TokenLogprob } from './backend.js';
import type { ResolvedGeneration } from './generation-params.js';
import { StopMatcher } from './stop-matcher.js';

export type FinishReason = 'stop' | 'length';

export interface TextDelta {
  /** New text since the previous delta; may be '' (held back, or an event without tokens). */
  readonly text: string;
  /** Generated tokens so far, stop token included (OpenAI's completion_tokens). */
  readonly completionTokens: number;
  /** Set on the last delta only. */
  readonly finishReason?: FinishReason;
  /**
   * With logprobs asked for: the tokens that arrived with this delta and their logprobs (a stop token, EOS or
   * stop_token_ids, has no entry: its text is never returned; a token whose text a stop string cut has one).
   */
  readonly logprobs?: readonly LoggedToken[];
  /** echo with logprobs, on the first delta: the prompt's logprobs as the backend's first event carried them. */
  readonly promptLogprobs?: readonly TokenLogprob[];
}

export interface LoggedToken extends TokenLogprob {
  readonly id: number;
}

/** The backend broke its contract (e.g. ended without a finish reason); a 500 for the client. */
export class BackendProtocolError extends Error {
  override readonly name = 'BackendProtocolError';
}

/**
 * Yields one delta per backend event. The first next() settles when the backend's first event arrives or it
 * rejects the request, so a caller can still choose the HTTP status. Throws whatever the backend throws.
 */
export function generateText(
  backend: GenerationBackend,
  gen: ResolvedGeneration,
  tokenizer: Tokenizer,
  clientSignal: AbortSignal,
): AsyncGenerator<TextDelta, void, undefined> {
  return generateTextFrom((signal) => backend.generate(gen.request, signal), gen, tokenizer, clientSignal);
}

/** generateText from any source of backend events (one choice of an n > 1 request: choices.ts); aborting the signal it is given cancels it. */
export async function* generateTextFrom(
  source: (signal: AbortSignal) => AsyncIterable<GenerationEvent>,
  gen: ResolvedGeneration,
  tokenizer: Tokenizer,
  clientSignal: AbortSignal,
): AsyncGenerator<TextDelta, void, undefined> {
  const cancel = new AbortController();
  const onClientGone = (): void => cancel.abort(clientSignal.reason);
  if (clientSignal.aborted) onClientGone();
  else clientSignal.addEventListener('abort', onClientGone, { once: true });

  const { maxTokens } = gen.request;
  const stopIds = new Set(gen.request.stopTokenIds);
  // Special tokens (bos, eos) are never part of the returned text, as in vLLM's default.
  const detok = tokenizer.createDetokenizer({ skipSpecialTokens: true });
  const matcher = new StopMatcher(gen.stop);
  let count = 0;
  /** The backend needs no abort: it finished by itself, or was already told to stop. */
  let settled = false;
  try {
    for await (const event of source(cancel.signal)) {
      let text = '';
      let finish: FinishReason | undefined;
      const logged: LoggedToken[] = [];
      for (const [j, id] of event.tokens.entries()) {
        if (count >= maxTokens) {
          finish = 'length';
          break;
        }
        count++;
        if (stopIds.has(id)) {
          finish = 'stop';
          break;
        }
        const entry = event.logprobs?.[j];
        if (entry) logged.push({ id, ...entry });
        const r = matcher.push(detok.push(id));
        text += r.text;
        if (r.stopped) {
          finish = 'stop';
          break;
        }
      }
      finish ??= count >= maxTokens ? 'length' : event.finishReason;
      const lp = { ...(event.logprobs ? { logprobs: logged } : {}), ...(event.promptLogprobs ? { promptLogprobs: event.promptLogprobs } : {}) };
      if (finish === undefined) {
        yield { text, completionTokens: count, ...lp };
        continue;
      }
      // Cancel before the last delta is even sent: a stopped request should free its decode slot at once.
      if (event.finishReason === undefined) cancel.abort(new FinishedByGateway(finish));
      settled = true;
      yield { ...finishText(text, finish, detok.flush(), matcher), completionTokens: count, ...lp };
      return;
    }
    if (!clientSignal.aborted) throw new BackendProtocolError(`backend ended request ${gen.request.requestId} without a finish reason`);
  } finally {
    clientSignal.removeEventListener('abort', onClientGone);
    // Left early (client gone, consumer returned, error): cancel whatever is still running.
    if (!settled && !cancel.signal.aborted) cancel.abort(new Error('request ended by the gateway'));
  }
}

/** The tail of the last delta: text the detokenizer and the matcher still hold, unless a stop string cut it. */
function finishText(text: string, finish: FinishReason, detokTail: string, matcher: StopMatcher): { text: string; finishReason: FinishReason } {
  const r = matcher.push(detokTail);
  if (r.stopped) return { text: text + r.text, finishReason: 'stop' };
  return { text: text + r.text + matcher.flush(), finishReason: finish };
}
