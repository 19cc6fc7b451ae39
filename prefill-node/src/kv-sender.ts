// Sends one job's latent KV to its decode node as kv-chunk requests, each waiting for its kv-ack within
// ackTimeoutMs, under the destination's shared byte window (send-window.ts). Layers are queued as the prefill
// hands them over (shared/protocol kv-chunking.ts, KvChunkQueue); one pump per job cuts each chunk only when
// the window lets one go, so a chunk holds as many whole pages as fit max_payload of whatever is queued then:
// when only one layer is ready the chunks are that layer's (streaming as it computes), when the window held
// the sender back while later layers arrived a chunk packs the tail of one layer with the next. sendLayer
// returns once less than one max_payload of pages waits, so acks overlap the next layers' compute and the
// next layer can join the queue's tail; flush() waits for the queue and the acks. The first failure (a
// refusal, a timeout, a malformed reply) or a cancel stops the sender: no chunk is sent after it, what was
// queued is dropped, and sendLayer/flush throw it.
import type { Logger } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { TimeoutError } from '@nats-io/transport-node';
import type { LatentKvLayout } from '@latentwire/protocol';
import {
  encodeMessage, KvChunkQueue, kvChunkTokens, maxPayloadOf, prefillFailedMessage, SUBJECT_TYPES, WireError,
  type EncodedKvChunk, type KvAckRefusal, type PrefillDone, type PrefillDoneRefusal, type WireRejections, type WireSubjects,
} from '@latentwire/protocol';
import { KvSendError, PrefillRefusedError, RequestGoneError } from './errors.js';
import type { PrefillMetrics } from './metrics.js';
import type { Release, SendWindows } from './send-window.js';

/** What every job's sender shares: the connection, windows, limits and accounting. */
export interface KvSendContext {
  readonly nc: NatsConnection;
  readonly subjects: WireSubjects;
  readonly windows: SendWindows;
  readonly ackTimeoutMs: number;
  readonly metrics: PrefillMetrics;
  readonly rejections: WireRejections;
  readonly logger: Logger;
  /** Buffers of acknowledged chunks, shared by the jobs (absent: each job keeps its own). */
  readonly buffers?: ChunkBuffers;
}

/**
 * Buffers of acknowledged kv-chunks, handed to the next chunks: an ok kv-ack means the bytes left this
 * process, so its buffer can be written again. Shared by a node's jobs, so a steady stream of requests
 * allocates no chunk memory (about a window's worth of max_payload buffers stays).
 */
export class ChunkBuffers {
  private readonly free: Uint8Array[] = [];

  /** @param max buffers kept (8 MiB window / 1 MiB max_payload, and some) */
  constructor(readonly max = 16) {}

  /** `n` bytes to encode a chunk into: a free buffer, else a new one of `size` (>= n, so it fits later chunks). */
  take(n: number, size: number): Uint8Array {
    for (let b = this.free.pop(); b; b = this.free.pop()) if (b.byteLength >= n) return b.subarray(0, n);
    return new Uint8Array(Buffer.allocUnsafeSlow(Math.max(n, size)).buffer).subarray(0, n);
  }

  /** Gives back the buffer of a chunk whose ok kv-ack arrived (never one still in flight). */
  give(bytes: Uint8Array): void {
    if (this.free.length < this.max) this.free.push(new Uint8Array(bytes.buffer));
  }
}

export interface KvDestination {
  readonly requestId: string;
  readonly decodeNodeId: string;
  /** The decode node's layout (its key is what each kv-chunk carries). */
  readonly layout: LatentKvLayout;
  /** Prompt tokens: rows per layer. */
  readonly tokens: number;
}

export class KvSender {
  private readonly kvSubject: string;
  private readonly controlSubject: string;
  /** Aborted by the first failure or by the job's cancel signal; its reason is what sendLayer/flush throw. */
  private readonly stop = new AbortController();
  private readonly pending = new Set<Promise<void>>();
  /** Layers handed over and not yet cut into chunks. */
  private readonly queue: KvChunkQueue;
  /** The loop cutting and sending chunks while the queue holds any (the last one, once `pumping` is false). */
  private pump: Promise<void> = Promise.resolve();
  private pumping = false;
  /** Woken when the pump took a chunk from the queue or stopped. */
  private progressWaiters: (() => void)[] = [];
  private readonly buffers: ChunkBuffers;

  constructor(private readonly ctx: KvSendContext, private readonly dest: KvDestination, cancel: AbortSignal) {
    this.kvSubject = ctx.subjects.kv(dest.decodeNodeId);
    this.controlSubject = ctx.subjects.control(dest.decodeNodeId);
    this.queue = new KvChunkQueue(dest.requestId, dest.layout, dest.tokens);
    this.buffers = ctx.buffers ?? new ChunkBuffers();
    if (cancel.aborted) this.stop.abort(cancel.reason);
    else cancel.addEventListener('abort', () => this.stop.abort(cancel.reason), { once: true });
    this.stop.signal.addEventListener('abort', () => {
      this.queue.clear();
      this.progressed();
    }, { once: true });
  }

  /**
   * Queues every page of one layer (contiguous page bytes, as PrefillStream.onLayer gets them; kept, not
   * copied, until sent: the caller must not reuse the buffer) and returns once less than one max_payload of
   * this job's pages waits for the window. Throws WireUsageError if a token cannot fit max_payload, RangeError
   * if `pages` is shorter than the tokens need, or the sender's failure.
   */
  async sendLayer(layer: number, pages: Uint8Array): Promise<void> {
    this.throwIfStopped();
    const { layout, tokens, requestId } = this.dest;
    const maxPayload = maxPayloadOf(this.ctx.nc); // per layer: a reconnect may land on another server
    kvChunkTokens(layout, requestId, layer, maxPayload); // a token that cannot fit fails here, not in the pump
    this.queue.push(layer, pages);
    if (!this.pumping) {
      this.pumping = true; // set and cleared synchronously with the loop's own check: no layer is left unpumped
      this.pump = this.run();
    }
    while (!this.stop.signal.aborted && this.queue.queuedBytes >= maxPayload) await new Promise<void>((r) => this.progressWaiters.push(r));
    this.throwIfStopped();
  }

  /** Waits for the queue to be sent and every kv-ack; throws the first failure or the cancel. */
  async flush(): Promise<void> {
    while (this.pumping || this.pending.size > 0) {
      await this.pump;
      await Promise.all(this.pending);
    }
    this.throwIfStopped();
  }

  /**
   * Until the queue is empty: waits for room for a max_payload chunk in the window, then cuts the chunk from
   * whatever is queued now (several layers if they arrived while it waited) and sends it, keeping only its
   * size of the window. Never rejects (a failure stops the sender).
   */
  private async run(): Promise<void> {
    try {
      while (!this.queue.empty) {
        this.throwIfStopped();
        const maxPayload = maxPayloadOf(this.ctx.nc);
        const grant = await this.ctx.windows.acquire(this.dest.decodeNodeId, maxPayload, this.stop.signal);
        // less than a full chunk queued: let the event loop turn once, so a layer already read back (its
        // onLayer pending) joins this chunk; a layer still computing does not, and the tail goes now
        if (this.queue.queuedBytes < maxPayload) await new Promise<void>((r) => setImmediate(r));
        if (this.stop.signal.aborted) {
          grant();
          this.throwIfStopped();
        }
        let chunk;
        try {
          chunk = this.queue.next(maxPayload, (n) => this.buffers.take(n, maxPayload));
        } finally {
          if (!chunk) grant(); // nothing left, or cutting failed: the window gets its bytes back either way
        }
        if (!chunk) break;
        grant.shrink(chunk.bytes.byteLength);
        this.progressed();
        const p = this.request(chunk, grant).finally(() => this.pending.delete(p));
        this.pending.add(p);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.pumping = false;
      this.progressed();
    }
  }

  private progressed(): void {
    const waiters = this.progressWaiters;
    this.progressWaiters = [];
    for (const w of waiters) w();
  }

  /** prefill-done after the last ack: resolves when the decode node acknowledged it. */
  async sendDone(done: PrefillDone): Promise<void> {
    await this.flush();
    const subject = this.controlSubject;
    const reply = await this.ask(subject, encodeMessage(done), 'prefill-done-ack');
    const ack = this.ctx.rejections.decode(reply, subject, SUBJECT_TYPES.controlReply);
    if (!ack) throw new KvSendError(subject, `malformed prefill-done-ack for ${done.requestId} on ${subject}`);
    if (ack.requestId !== done.requestId) {
      this.ctx.rejections.reject(new WireError('invalid', `prefill-done-ack for ${ack.requestId}, expected ${done.requestId}`, 'prefill-done-ack'), subject);
      throw new KvSendError(subject, `prefill-done-ack on ${subject} names request ${ack.requestId}, not ${done.requestId}`);
    }
    if (!ack.ok) throw doneRefusal(this.dest.requestId, subject, ack.reason!, ack.detail);
  }

  private throwIfStopped(): void {
    if (this.stop.signal.aborted) throw this.stop.signal.reason;
  }

  private fail(err: unknown): void {
    if (!this.stop.signal.aborted) this.stop.abort(err);
  }

  /** One chunk's request and ack; never rejects (a failure stops the sender). */
  private async request(chunk: EncodedKvChunk, release: Release): Promise<void> {
    const { metrics, rejections } = this.ctx;
    const m = chunk.message;
    const subject = this.kvSubject;
    metrics.kvChunks.inc();
    metrics.kvBytes.inc(chunk.bytes.byteLength);
    try {
      const reply = await this.ask(subject, chunk.bytes, 'kv-ack');
      const ack = rejections.decode(reply, subject, SUBJECT_TYPES.kvReply);
      if (!ack) throw new KvSendError(subject, `malformed kv-ack for ${m.requestId} layer ${m.layer} token ${m.tokenStart} on ${subject}`);
      if (ack.requestId !== m.requestId || ack.layer !== m.layer || ack.tokenStart !== m.tokenStart) {
        const detail = `kv-ack for ${ack.requestId} layer ${ack.layer} token ${ack.tokenStart}, ` +
          `expected ${m.requestId} layer ${m.layer} token ${m.tokenStart}`;
        rejections.reject(new WireError('invalid', detail, 'kv-ack'), subject);
        throw new KvSendError(subject, `${detail} on ${subject}`);
      }
      if (!ack.ok) throw kvRefusal(m.requestId, subject, ack.reason!, ack.detail);
      this.buffers.give(chunk.bytes); // only after an ok ack
    } catch (err) {
      this.fail(err);
    } finally {
      release();
    }
  }

  /** nc.request with the ack timeout, its errors as KvSendError naming the subject; returns the reply's bytes. */
  private async ask(subject: string, bytes: Uint8Array, replyType: string): Promise<Uint8Array> {
    const started = performance.now();
    try {
      const msg = await this.ctx.nc.request(subject, bytes, { timeout: this.ctx.ackTimeoutMs });
      this.ctx.metrics.ackWait.observe((performance.now() - started) / 1000);
      return msg.data;
    } catch (cause) {
      const why = cause instanceof TimeoutError ? `no ${replyType} within ${this.ctx.ackTimeoutMs} ms` : `request failed: ${(cause as Error).message}`;
      throw new KvSendError(subject, `${subject}: ${why}`, { cause });
    }
  }
}

/** Tells the decode node the prefill gave up, so it frees the reservation now (fire and forget). */
export async function sendPrefillFailed(
  ctx: Pick<KvSendContext, 'nc' | 'subjects' | 'logger'>, dest: Pick<KvDestination, 'requestId' | 'decodeNodeId'>, reason: string,
): Promise<void> {
  const subject = ctx.subjects.control(dest.decodeNodeId);
  try {
    ctx.nc.publish(subject, encodeMessage(prefillFailedMessage({ requestId: dest.requestId, reason: reason.slice(0, 1000) })));
    await ctx.nc.flush();
  } catch (err) {
    ctx.logger.warn({ err, requestId: dest.requestId, subject }, 'could not send prefill-failed');
  }
}

function kvRefusal(requestId: string, subject: string, reason: KvAckRefusal, detail: string | undefined): Error {
  const text = `decode node refused kv-chunk of ${requestId}: ${reason}${detail ? ` (${detail})` : ''}`;
  if (reason === 'cancelled' || reason === 'no-reservation') return new RequestGoneError(requestId, reason, subject, text);
  return new PrefillRefusedError(`${text} on ${subject}`); // out-of-range, incompatible: the same bytes would be refused again
}

function doneRefusal(requestId: string, subject: string, reason: PrefillDoneRefusal, detail: string | undefined): Error {
  const text = `decode node refused prefill-done of ${requestId}: ${reason}${detail ? ` (${detail})` : ''}`;
  if (reason === 'cancelled' || reason === 'no-reservation') return new RequestGoneError(requestId, reason, subject, text);
  // incomplete, too-large, incompatible: the decode node ends the reservation with any refusal of a
  // prefill-done (a failed handoff can't be repaired), so a retry would only be told 'cancelled'
  return new PrefillRefusedError(`${text} on ${subject}`);
}
