// One admitted request's tokens → `tokens` messages on its subject. Tokens wait up to flushMs so that fast
// steps share a message (at MAX_BATCH sequences a message per token per step would be MAX_BATCH messages a
// step); the first token of a wait starts the timer. The request's first token (the prefill's) goes out at
// once: waiting would only add to time-to-first-token. `seq` counts messages from 0; the last one carries
// the finish reason and usage (and the error text for 'error'), with whatever tokens were still waiting.
import { encodeMessage, tokensMessage, type FinishReason, type PrefillTiming, type Tokens, type Usage, type WireLogprobs } from '@latentwire/protocol';
import type { RequestEvents, TokenLogprobs } from '../engine/engine.js';

/** A token's logprobs as the wire carries them. */
export const wireLogprobs = (l: TokenLogprobs): WireLogprobs => ({ logprob: l.logprob, top: l.top.map((e) => [e.id, e.logprob] as const) });

/** Well under MAX_TOKENS_PER_MESSAGE; a wait never gathers this many unless flushMs is huge. */
const MAX_PENDING = 4096;
/** Messages kept for replay per request (a longer stream replays only its first ones). */
const MAX_KEPT = 65_536;
/** The wire's bound on error text. */
const MAX_ERROR_CHARS = 1000;

export class TokenStream implements RequestEvents {
  private pending: number[] = [];
  /** Logprobs of the pending tokens, one each, when the request asked for them (else empty). */
  private pendingLogprobs: WireLogprobs[] = [];
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private done = false;
  /** Every message sent, by seq, for replay (a gateway that missed some during a NATS reconnect asks again). */
  private readonly sent: Uint8Array[] = [];

  /**
   * @param publish sends one encoded message on the request's tokens subject (never throws: it logs)
   * @param onDone called once after the final message, with the finish reason
   */
  constructor(
    readonly requestId: string,
    private readonly flushMs: number,
    private readonly publish: (bytes: Uint8Array) => void,
    private readonly onDone: (reason: FinishReason, usage: Usage) => void,
    /** timing: the prefill's, passed on in the first message; onSent: tokens of each message as it goes out. */
    private readonly extra: {
      readonly timing?: PrefillTiming | undefined;
      /** echo with logprobs: the prompt's, passed on in the first message. */
      readonly promptLogprobs?: readonly WireLogprobs[] | undefined;
      readonly onSent?: (tokens: number) => void;
    } = {},
  ) {}

  get finished(): boolean {
    return this.done;
  }

  onTokens(tokens: readonly number[], logprobs?: readonly TokenLogprobs[]): void {
    if (this.done) return;
    this.pending.push(...tokens);
    if (logprobs) this.pendingLogprobs.push(...logprobs.map(wireLogprobs));
    if (this.flushMs === 0 || this.seq === 0 || this.pending.length >= MAX_PENDING) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  onFinish(reason: FinishReason, usage: Usage, error?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    const errorText = reason === 'error' ? describeError(error) : undefined;
    this.send({ finishReason: reason, usage: { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens }, error: errorText });
    this.onDone(reason, usage);
  }

  private flush(): void {
    this.clearTimer();
    if (this.pending.length > 0 && !this.done) this.send({});
  }

  private send(last: Pick<Tokens, 'finishReason' | 'usage' | 'error'>): void {
    const timing = this.seq === 0 ? this.extra.timing : undefined;
    const prompt = this.seq === 0 && this.extra.promptLogprobs ? { promptLogprobs: this.extra.promptLogprobs } : {};
    // logprobs go only with a message whose every token has them (a request asks for all or none)
    const logprobs = this.pendingLogprobs.length > 0 && this.pendingLogprobs.length === this.pending.length ? { logprobs: this.pendingLogprobs } : {};
    const msg = tokensMessage({ requestId: this.requestId, seq: this.seq, tokens: this.pending, ...last, ...(timing ? { timing } : {}), ...logprobs, ...prompt });
    this.extra.onSent?.(this.pending.length);
    this.pending = [];
    this.pendingLogprobs = [];
    this.seq = (this.seq + 1) >>> 0;
    const bytes = encodeMessage(msg);
    if (this.sent.length < MAX_KEPT) this.sent.push(bytes);
    this.publish(bytes);
  }

  /** Publishes again the messages from `fromSeq` on (those kept); returns how many. */
  replay(fromSeq: number): number {
    const from = Math.max(0, fromSeq);
    for (let i = from; i < this.sent.length; i++) this.publish(this.sent[i]!);
    return Math.max(0, this.sent.length - from);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** An engine error as the wire's error text: its message, never prompt text (engine errors carry none). */
function describeError(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err ?? 'unknown error');
  return (text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS - 1)}…` : text) || 'unknown error';
}
