// HTTP-LAYER TEST DOUBLE, not a stand-in for the engine: it replays token ids the test chooses (the model's
// own transformers reference outputs, or sequences crafted to split a stop string or a UTF-8 character over
// several tokens) so the gateway's text, SSE, stop and error handling can be checked exactly. It honours
// the GenerationBackend contract the way the real NATS → prefill → decode backend must: stop ids end with
// 'stop' (the stop id reported), maxTokens ends with 'length', an abort of the signal ends the stream.
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendReadiness, BackendRejection, GenerationBackend, GenerationEvent, GenerationRequest } from '../../../src/index.js';
import type { TokenLogprob } from '../../../src/http/backend.js';

export interface ReplayOptions {
  /** Ids to replay for a request (e.g. a reference case's greedy_ids followed by EOS). */
  readonly script: (req: GenerationRequest) => readonly number[];
  /** Repeat the script until aborted (for disconnect tests); otherwise running out of ids is a test bug. */
  readonly loop?: boolean;
  readonly tokensPerEvent?: number;
  /** Pause before each event, in ms. */
  readonly delayMs?: number;
  readonly maxRequestTokens?: number;
  /** The prefill workers' prompt limit (GenerationBackend.maxPromptTokens). */
  readonly maxPromptTokens?: number;
  /** Refuse every request at admission, as a saturated cluster would. */
  readonly reject?: BackendRejection;
  /** Throw this after `failAfterEvents` events (0 = at admission). */
  readonly fail?: Error;
  readonly failAfterEvents?: number;
  /** When a request asks for logprobs: made-up ones for a token, with `top` alternatives (a real node computes them on the GPU). */
  readonly logprobs?: (id: number, top: number) => TokenLogprob;
}

export interface ReplayCall {
  readonly request: GenerationRequest;
  readonly signal: AbortSignal;
  /** performance.now() when the signal fired. */
  abortedAt?: number;
  events: number;
}

export class ReplayBackend implements GenerationBackend {
  readonly calls: ReplayCall[] = [];

  constructor(private readonly opts: ReplayOptions) {}

  maxRequestTokens(): number | undefined {
    return this.opts.maxRequestTokens;
  }

  maxPromptTokens(): number | undefined {
    return this.opts.maxPromptTokens;
  }

  async readiness(): Promise<BackendReadiness> {
    return { ready: true };
  }

  async *generate(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    const call: ReplayCall = { request, signal, events: 0 };
    this.calls.push(call);
    signal.addEventListener('abort', () => (call.abortedAt = performance.now()), { once: true });
    if (this.opts.reject) throw this.opts.reject;
    const script = this.opts.script(request);
    const per = this.opts.tokensPerEvent ?? 1;
    const stopIds = new Set(request.stopTokenIds);
    let at = 0;
    let generated = 0;
    while (!signal.aborted) {
      if (this.opts.fail && call.events === (this.opts.failAfterEvents ?? 0)) throw this.opts.fail;
      if (this.opts.delayMs) await sleep(this.opts.delayMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      const tokens: number[] = [];
      let finishReason: GenerationEvent['finishReason'];
      while (tokens.length < per && finishReason === undefined) {
        if (at === script.length) {
          if (!this.opts.loop) throw new Error(`replay script of ${script.length} ids ran out`);
          at = 0;
        }
        const id = script[at++]!;
        tokens.push(id);
        generated++;
        if (stopIds.has(id)) finishReason = 'stop';
        else if (generated === request.maxTokens) finishReason = 'length';
      }
      call.events++;
      const k = request.sampling.logprobs;
      const lp = k !== undefined && this.opts.logprobs ? { logprobs: tokens.map((id) => this.opts.logprobs!(id, k)) } : {};
      yield finishReason ? { tokens, finishReason, ...lp } : { tokens, ...lp };
      if (finishReason) return;
    }
  }
}
