// A stand-in for a decode node on the wire, for the prefill node's integration tests: a real NATS client on
// the node's kv and control subjects that records what arrives (kv-chunks in arrival order, copied),
// answers as told (ok by default, late, never, refusals, garbage), and measures the unacknowledged bytes
// it holds, so flow control is checked from the receiving side.
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { latentLayoutKey, pagesFor, type LatentKvLayout } from '@latentwire/protocol';
import {
  encodeMessage, kvAckMessage, kvChunkPieces, prefillDoneAckMessage, SUBJECT_TYPES, WireRejections,
  type KvChunk, type PrefillDone, type PrefillFailed, type WireSubjects,
} from '@latentwire/protocol';

export interface DecodeBehaviour {
  /** Called as each chunk arrives (index counts from 0), before it is answered. */
  onChunk?(m: KvChunk, index: number): void;
  /** The reply's bytes, or undefined to never answer. Default: an ok kv-ack. */
  kvReply?(m: KvChunk, index: number): Uint8Array | undefined;
  /** ms before each kv-ack is sent (answers to different chunks overlap). */
  ackDelayMs?: number;
  /** Default: an ok prefill-done-ack. */
  doneReply?(m: PrefillDone): Uint8Array | undefined;
}

export const okAck = (m: KvChunk): Uint8Array =>
  encodeMessage(kvAckMessage({ requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart, ok: true }));

export class FakeDecodeNode {
  readonly chunks: KvChunk[] = [];
  readonly done: PrefillDone[] = [];
  readonly failed: PrefillFailed[] = [];
  /** Received and not yet answered kv-chunk bytes (whole messages), now and at most. */
  inFlightBytes = 0;
  maxInFlightBytes = 0;
  readonly rejections = new WireRejections({ logger: pino({ level: 'silent' }), registry: new Registry() });

  private constructor(private readonly behaviour: DecodeBehaviour) {}

  static async start(nc: NatsConnection, subjects: WireSubjects, nodeId: string, behaviour: DecodeBehaviour = {}): Promise<FakeDecodeNode> {
    const node = new FakeDecodeNode(behaviour);
    nc.subscribe(subjects.kv(nodeId), { callback: (err, msg) => (err ? undefined : node.onKv(msg)) });
    nc.subscribe(subjects.control(nodeId), { callback: (err, msg) => (err ? undefined : node.onControl(msg)) });
    await nc.flush();
    return node;
  }

  /** Received chunks of one request. */
  chunksOf(requestId: string): KvChunk[] {
    return this.chunks.filter((c) => c.requestId === requestId);
  }

  /** One request's pages per layer, reassembled from its chunks (unsent slots stay zero). */
  pages(requestId: string, layout: LatentKvLayout, layers: number, tokens: number): Uint8Array[] {
    const out = Array.from({ length: layers }, () => new Uint8Array(pagesFor(layout, tokens) * layout.pageBytes));
    for (const c of this.chunksOf(requestId)) {
      if (c.layoutKey !== latentLayoutKey(layout)) throw new Error(`chunk in ${c.layoutKey}, expected ${latentLayoutKey(layout)}`);
      for (const p of kvChunkPieces(layout, c)) {
        const base = p.pageIndex * layout.pageBytes;
        out[p.layer]!.set(p.rows, base + p.pageRowsOffset);
        out[p.layer]!.set(p.scales, base + p.pageScalesOffset);
      }
    }
    return out;
  }

  private onKv(msg: Msg): void {
    const m = this.rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.kv);
    if (!m) return;
    const index = this.chunks.length;
    this.chunks.push({ ...m, data: Uint8Array.from(m.data) });
    const bytes = msg.data.byteLength;
    this.inFlightBytes += bytes;
    this.maxInFlightBytes = Math.max(this.maxInFlightBytes, this.inFlightBytes);
    this.behaviour.onChunk?.(m, index);
    const reply = this.behaviour.kvReply ? this.behaviour.kvReply(m, index) : okAck(m);
    if (reply === undefined) return; // never answered: stays "in flight" here
    const answer = () => {
      this.inFlightBytes -= bytes;
      msg.respond(reply);
    };
    if (this.behaviour.ackDelayMs) setTimeout(answer, this.behaviour.ackDelayMs);
    else answer();
  }

  private onControl(msg: Msg): void {
    const m = this.rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.control);
    if (!m) return;
    if (m.type === 'prefill-failed') this.failed.push(m);
    if (m.type !== 'prefill-done') return;
    this.done.push(m);
    const reply = this.behaviour.doneReply ? this.behaviour.doneReply(m) : encodeMessage(prefillDoneAckMessage({ requestId: m.requestId, ok: true }));
    if (reply !== undefined) msg.respond(reply);
  }
}
