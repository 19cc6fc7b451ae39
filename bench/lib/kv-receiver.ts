// The decode side of the transfer bench at shapes no GPU here can hold: a NATS subscriber on a decode
// node's kv subject doing what decode-node's kv handler does with a chunk, minus the GPU upload — decode
// and validate it (schema, sizes, CRC-32 checksum, as DecodeNodeService does through WireRejections), check
// the layout key, copy each page's part (rows, scales) to its place in a CPU page pool (where the real node
// calls engine.writeKv → queue.writeBuffer), and answer a kv-ack.
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { LatentKvLayout } from '@latentwire/protocol';
import {
  encodeMessage, kvAckMessage, kvChunkPieces, SUBJECT_TYPES, WIRE_REJECT_REASONS, WireRejections, type KvChunk,
} from '@latentwire/protocol';

export class KvReceiver {
  /** Chunks acknowledged, their encoded bytes, and chunks refused (wrong layout). */
  chunks = 0;
  bytes = 0;
  refused = 0;
  readonly rejections = new WireRejections({ logger: pino({ level: 'silent' }), registry: new Registry() });
  private readonly pool: Uint8Array;
  private sub: Subscription | null = null;

  /** @param poolPages pages of the CPU pool; a piece's (layer, page index) wraps around it. */
  constructor(private readonly layout: LatentKvLayout, private readonly layoutKey: string, private readonly poolPages = 64) {
    this.pool = new Uint8Array(poolPages * layout.pageBytes);
  }

  async start(nc: NatsConnection, subject: string): Promise<void> {
    this.sub = nc.subscribe(subject, { callback: (err, msg) => void (err ? undefined : this.onChunk(msg, subject)) });
    await nc.flush();
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = null;
  }

  /** Chunks dropped as invalid (no reply, as the real node does). */
  get invalid(): number {
    return WIRE_REJECT_REASONS.reduce((n, r) => n + this.rejections.count(r), 0);
  }

  private onChunk(msg: Msg, subject: string): void {
    const m = this.rejections.decode(msg.data, subject, SUBJECT_TYPES.kv);
    if (!m) return;
    const where = { requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart };
    if (m.layoutKey !== this.layoutKey) {
      this.refused++;
      msg.respond(encodeMessage(kvAckMessage({ ...where, ok: false, reason: 'incompatible', detail: `layout ${m.layoutKey}, expected ${this.layoutKey}` })));
      return;
    }
    this.place(m);
    this.chunks++;
    this.bytes += msg.data.byteLength;
    msg.respond(encodeMessage(kvAckMessage({ ...where, ok: true })));
  }

  private place(m: KvChunk): void {
    for (const p of kvChunkPieces(this.layout, m)) {
      const base = ((p.layer * 31 + p.pageIndex) % this.poolPages) * this.layout.pageBytes;
      this.pool.set(p.rows, base + p.pageRowsOffset);
      if (p.scales.byteLength > 0) this.pool.set(p.scales, base + p.pageScalesOffset);
    }
  }
}
