// Watches a running cluster's handoff from the outside, with plain (non-queue) subscriptions of the bench's
// own: NATS delivers every message to every subscriber, so the bench sees each kv-chunk and prefill-done
// as the decode node does, and the replies (kv-ack, prefill-done-ack) on the requesters' inboxes. Per
// request it records when the last layer's last kv-chunk, the last kv-ack, the prefill-done and the first
// tokens message went by (performance.now(), ms).
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { decodeMessage, kvChunkRuns, SUBJECT_TYPES, type WireSubjects } from '@latentwire/protocol';

export interface HandoffTimes {
  /** The last kv-chunk of the last layer (the prefill's last layer's KV on the wire). */
  lastChunk?: number;
  /** The last kv-ack of the request (every chunk stored). */
  lastAck?: number;
  prefillDone?: number;
  prefillDoneAck?: number;
  /** The first tokens message (the gateway's subscription gets the same message). */
  firstTokens?: number;
}

export class HandoffWatch {
  readonly times = new Map<string, HandoffTimes>();
  private readonly subs: Subscription[] = [];

  private constructor(private readonly nc: NatsConnection, private readonly subjects: WireSubjects) {}

  /** Watches the kv and control subjects of `nodeIds` and every reply inbox. */
  static async start(nc: NatsConnection, subjects: WireSubjects, nodeIds: readonly string[], layers: number): Promise<HandoffWatch> {
    const w = new HandoffWatch(nc, subjects);
    for (const id of nodeIds) {
      w.watch(subjects.kv(id), (msg) => {
        const m = decodeMessage(msg.data, SUBJECT_TYPES.kv);
        // a chunk that spans layers names the last layer in its last run
        if (kvChunkRuns(m).at(-1)!.layer === layers - 1) w.of(m.requestId).lastChunk = performance.now();
      });
      w.watch(subjects.control(id), (msg) => {
        const m = decodeMessage(msg.data, SUBJECT_TYPES.control);
        if (m.type === 'prefill-done') w.of(m.requestId).prefillDone = performance.now();
      });
    }
    // nats.js replies go to `_INBOX.<nuid>.<token>` of the requesting connection
    w.watch('_INBOX.>', (msg) => {
      const m = decodeMessage(msg.data, [...SUBJECT_TYPES.kvReply, ...SUBJECT_TYPES.controlReply]);
      if (m.type === 'kv-ack') w.of(m.requestId).lastAck = performance.now();
      else w.of(m.requestId).prefillDoneAck = performance.now();
    });
    await nc.flush();
    return w;
  }

  /** Subscribes to one request's tokens subject; call before the request starts. */
  async expect(requestId: string): Promise<void> {
    const sub = this.nc.subscribe(this.subjects.tokens(requestId), {
      max: 1,
      callback: (err) => void (err ? undefined : (this.of(requestId).firstTokens ??= performance.now())),
    });
    this.subs.push(sub);
    await this.nc.flush();
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
  }

  private of(requestId: string): HandoffTimes {
    let t = this.times.get(requestId);
    if (!t) this.times.set(requestId, (t = {}));
    return t;
  }

  /** Messages this watch can't read (other types on an inbox, say) are ignored. */
  private watch(subject: string, on: (msg: Msg) => void): void {
    this.subs.push(this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          on(msg);
        } catch {
          /* not a message this watch times */
        }
      },
    }));
  }
}
