// What the kv path does per byte on a CPU core that raw NATS does not: the sender cutting a layer's pages
// into kv-chunks (the page bytes copied into the message, CRC-32, the msgpack header) into reused buffers,
// as KvSender does with the buffers of acknowledged chunks; the receiver's decodeMessage (msgpack, schema,
// size, CRC-32); and CRC-32 alone. One thread: MB/s of encoded message bytes.
import { decodeMessage, kvChunkChecksum, kvChunkMessages, KvChunkQueue, SUBJECT_TYPES, type KvLayerPages } from '@latentwire/protocol';

export interface CodecCost {
  readonly encodeMBps: number;
  readonly decodeMBps: number;
  readonly crcMBps: number;
}

export function measureCodecCost(src: KvLayerPages, maxPayload: number, minMs = 300): CodecCost {
  const encoded = [...kvChunkMessages(src, maxPayload)].map((c) => c.bytes);
  const bytes = encoded.reduce((a, b) => a + b.byteLength, 0);
  const spare = Array.from({ length: 8 }, () => new Uint8Array(maxPayload)); // a window's worth, reused
  const rate = (f: () => void) => {
    for (let i = 0; i < 5; i++) f(); // warm-up
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < minMs) {
      f();
      n++;
    }
    return (n * bytes) / ((performance.now() - t0) / 1e3) / 1e6;
  };
  return {
    encodeMBps: rate(() => {
      const q = new KvChunkQueue(src.requestId, src.layout, src.tokens);
      q.push(src.layer, src.pages);
      let i = 0;
      const alloc = (n: number) => spare[i++ % spare.length]!.subarray(0, n);
      for (let c = q.next(maxPayload, alloc); c; c = q.next(maxPayload, alloc));
    }),
    decodeMBps: rate(() => {
      for (const b of encoded) decodeMessage(b, SUBJECT_TYPES.kv);
    }),
    crcMBps: rate(() => void kvChunkChecksum(src.pages)),
  };
}
