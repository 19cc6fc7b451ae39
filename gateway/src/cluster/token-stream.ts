// The tokens messages of one request (on `<p>.tokens.<requestId>`), as GenerationEvents:
//   1. subscribe before the prefill job is queued (ready() waits until the server has the subscription),
//      so not even the first message can be missed;
//   2. messages must come with seq 0, 1, 2, …: NATS core keeps one publisher's order but may drop, so a
//      seq below the next expected is a duplicate (dropped) and one above it a loss (TokenStreamError 'gap');
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
}

export class TokenStream {
  private readonly sub: Subscription;
  private readonly inbox: Tokens[] = [];
  private failure: Error | undefined;
  private notify: (() => void) | undefined;
  private lastActivity = performance.now();
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
    if (!this.sub.isClosed()) this.sub.unsubscribe();
  }

  async *events(signal: AbortSignal): AsyncGenerator<GenerationEvent, void, undefined> {
    const { requestId, nodeId } = this.opts;
    this.lastActivity = performance.now();
    for (let expected = 0; ; ) {
      const m = await this.next(signal);
      if (!m) return;
      if (m.seq < expected) {
        this.opts.logger.warn({ requestId, seq: m.seq, expected }, 'duplicate tokens message dropped');
        continue;
      }
      if (m.seq > expected) {
        throw new TokenStreamError('gap', requestId, `tokens of request ${requestId} from ${nodeId}: seq ${m.seq} where ${expected} was expected (${m.seq - expected} message(s) lost)`);
      }
      expected++;
      switch (m.finishReason) {
        case undefined:
          if (m.tokens.length > 0) yield { tokens: m.tokens };
          break;
        case 'stop':
        case 'length':
          yield { tokens: m.tokens, finishReason: m.finishReason };
          return;
        case 'error':
          throw new DecodeNodeError(nodeId, requestId, 'error', `decode node ${nodeId} failed request ${requestId}: ${m.error ?? '(no detail)'}`);
        case 'cancelled':
          throw new DecodeNodeError(nodeId, requestId, 'cancelled', `decode node ${nodeId} cancelled request ${requestId}`);
      }
    }
  }

  /** The next message in arrival order; undefined once `signal` aborted. Throws a failure or an idle timeout. */
  private async next(signal: AbortSignal): Promise<Tokens | undefined> {
    for (;;) {
      const m = this.inbox.shift();
      if (m) {
        this.lastActivity = performance.now();
        return m;
      }
      if (this.failure) throw this.failure;
      if (signal.aborted) return undefined;
      const idleLeft = this.lastActivity + this.opts.idleTimeoutMs - performance.now();
      if (idleLeft <= 0) {
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
