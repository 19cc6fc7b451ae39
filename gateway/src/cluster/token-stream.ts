// The tokens messages of one request (on `<p>.tokens.<requestId>`), as GenerationEvents:
//   1. subscribe before the prefill job is queued (ready() waits until the server has the subscription),
//      so not even the first message can be missed;
//   2. messages must come with seq 0, 1, 2, …: NATS core keeps one publisher's order but may drop (a
//      reconnect), so a seq below the next expected is a duplicate (dropped) and one above it a hole: the
//      messages after it are held, the node is asked to replay from the missing seq, and a hole not filled
//      within gapTimeoutMs is a loss (TokenStreamError 'gap'); resync() asks for a replay from the next
//      expected seq (after a NATS reconnect, when even the last message may have been lost);
//   3. the message with a finishReason ends the stream: 'stop'/'length' as the last event, 'error' and
//      'cancelled' as a DecodeNodeError;
//   4. no message for idleTimeoutMs is a TokenStreamError 'idle'; fail() ends it from outside (node restart).
// An abort of the signal just ends the iteration: the caller cancels the request.
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { SUBJECT_TYPES, type PrefillTiming, type Tokens, type WireRejections, type WireSubjects } from '@latentwire/protocol';
import type { Logger } from 'pino';
import type { GenerationEvent } from '../http/backend.js';
import { DecodeNodeError, TokenStreamError } from './errors.js';

export interface TokenStreamOptions {
  readonly nc: NatsConnection;
  readonly subjects: WireSubjects;
  readonly rejections: WireRejections;
  readonly requestId: string;
  /** The decode node that holds the request (for error messages). */
  readonly nodeId: string;
  readonly idleTimeoutMs: number;
  readonly logger: Logger;
  /** Asks the node to publish the messages from `fromSeq` again; without it a hole is a loss at once. */
  readonly requestReplay?: (fromSeq: number, why: 'gap' | 'reconnect') => void;
  /** How long a hole may wait for a replay (default 2000 ms). */
  readonly gapTimeoutMs?: number;
}

/** Messages held behind a hole at most (more is a loss). */
const MAX_AHEAD = 4096;

export class TokenStream {
  private readonly sub: Subscription;
  private readonly inbox: Tokens[] = [];
  private failure: Error | undefined;
  private notify: (() => void) | undefined;
  private lastActivity = performance.now();
  /** The next seq expected; a replay starts there. */
  private expected = 0;
  private ended = false;
  /** A tokens message has arrived (the prefill is done, or the node ended the request). */
  started = false;
  /** The prefill's timing, from the first tokens message (seq 0) when it carried one. */
  firstTiming: PrefillTiming | undefined;

  constructor(private readonly opts: TokenStreamOptions) {
    this.sub = opts.nc.subscribe(opts.subjects.tokens(opts.requestId), {
      callback: (err, msg) => {
        if (err) return this.fail(err);
        const m = opts.rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.tokens);
        if (!m) return;
        if (m.requestId !== opts.requestId) {
          opts.logger.warn({ subject: msg.subject, requestId: m.requestId }, 'tokens message for another request dropped');
          return;
        }
        if (m.seq === 0 && m.timing) this.firstTiming = m.timing;
        this.started = true;
        this.inbox.push(m);
        this.wake();
      },
    });
  }

  get requestId(): string {
    return this.opts.requestId;
  }

  ready(): Promise<void> {
    return this.opts.nc.flush();
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  close(): void {
    this.ended = true;
    if (!this.sub.isClosed()) this.sub.unsubscribe();
  }

  /** After a NATS reconnect: messages may have been lost, the last one too; ask for them again. */
  resync(): void {
    if (!this.ended) this.opts.requestReplay?.(this.expected, 'reconnect'); // a node with nothing to replay ignores it
  }

  async *events(signal: AbortSignal): AsyncGenerator<GenerationEvent, void, undefined> {
    const { requestId, nodeId } = this.opts;
    const gapTimeoutMs = this.opts.gapTimeoutMs ?? 2000;
    this.lastActivity = performance.now();
    const ahead = new Map<number, Tokens>();
    let holeSince: number | undefined;
    for (let expected = 0; ; ) {
      this.expected = expected;
      let m = ahead.get(expected);
      if (m) ahead.delete(expected);
      else {
        m = await this.next(signal, holeSince === undefined ? undefined : holeSince + gapTimeoutMs, expected);
        if (!m) return;
      }
      if (m.seq < expected) {
        this.opts.logger.debug({ requestId, seq: m.seq, expected }, 'duplicate tokens message dropped');
        continue;
      }
      if (m.seq > expected) {
        if (!this.opts.requestReplay || ahead.size >= MAX_AHEAD) {
          throw new TokenStreamError('gap', requestId, `tokens of request ${requestId} from ${nodeId}: seq ${m.seq} where ${expected} was expected (${m.seq - expected} message(s) lost)`);
        }
        ahead.set(m.seq, m);
        if (holeSince === undefined) {
          holeSince = performance.now();
          this.opts.logger.warn({ requestId, nodeId, seq: m.seq, expected }, 'tokens messages missing: asking the node to replay');
          this.opts.requestReplay(expected, 'gap');
        }
        continue;
      }
      if (ahead.size === 0) holeSince = undefined;
      expected++;
      switch (m.finishReason) {
        case undefined:
          if (m.tokens.length > 0) yield { tokens: m.tokens, ...(m.logprobs ? { logprobs: m.logprobs } : {}), ...promptOf(m) };
          break;
        case 'stop':
        case 'length':
          yield { tokens: m.tokens, finishReason: m.finishReason, ...(m.logprobs ? { logprobs: m.logprobs } : {}), ...promptOf(m) };
          return;
        case 'error':
          throw new DecodeNodeError(nodeId, requestId, 'error', `decode node ${nodeId} failed request ${requestId}: ${m.error ?? '(no detail)'}`);
        case 'cancelled':
          throw new DecodeNodeError(nodeId, requestId, 'cancelled', `decode node ${nodeId} cancelled request ${requestId}`);
      }
    }
  }

  /**
   * The next message in arrival order; undefined once `signal` aborted. Throws a failure, an idle timeout, or
   * a loss when `holeDeadline` (a hole at `expected` waiting for its replay) passes.
   */
  private async next(signal: AbortSignal, holeDeadline?: number, expected = 0): Promise<Tokens | undefined> {
    for (;;) {
      const m = this.inbox.shift();
      if (m) {
        this.lastActivity = performance.now();
        return m;
      }
      if (this.failure) throw this.failure;
      if (signal.aborted) return undefined;
      const now = performance.now();
      if (holeDeadline !== undefined && now >= holeDeadline) {
        const { requestId, nodeId } = this.opts;
        throw new TokenStreamError('gap', requestId, `tokens of request ${requestId} from ${nodeId}: seq ${expected} lost (not replayed within ${this.opts.gapTimeoutMs ?? 2000} ms)`);
      }
      const idleLeft = Math.min(this.lastActivity + this.opts.idleTimeoutMs - now, holeDeadline === undefined ? Infinity : holeDeadline - now);
      if (this.lastActivity + this.opts.idleTimeoutMs - now <= 0) {
        const { requestId, nodeId, idleTimeoutMs } = this.opts;
        throw new TokenStreamError('idle', requestId, `no tokens for request ${requestId} from ${nodeId} in ${idleTimeoutMs} ms`);
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          this.notify = undefined;
          resolve();
        };
        const timer = setTimeout(done, idleLeft);
        signal.addEventListener('abort', done, { once: true });
        this.notify = done;
      });
    }
  }

  private wake(): void {
    this.notify?.();
  }
}

/** echo with logprobs: the prompt's logprobs, which the first message carries. */
const promptOf = (m: Tokens): { promptLogprobs?: Tokens['promptLogprobs'] } => (m.promptLogprobs ? { promptLogprobs: m.promptLogprobs } : {});
