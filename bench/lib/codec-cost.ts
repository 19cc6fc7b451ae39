// What the kv path does per byte on a CPU core that raw NATS does not: the sender cutting a layer's pages
// into kv-chunks (CRC-32 and msgpack encoding included), the receiver's decodeMessage (msgpack, schema,
// size, CRC-32), and CRC-32 alone. One thread: MB/s of encoded message bytes.
import { decodeMessage, kvChunkChecksum, kvChunkMessages, SUBJECT_TYPES, type KvLayerPages } from '@latentwire/protocol';

export interface CodecCost {
  readonly encodeMBps: number;
  readonly decodeMBps: number;
  readonly crcMBps: number;
}

export function measureCodecCost(src: KvLayerPages, maxPayload: number, minMs = 300): CodecCost {
  const encoded = [...kvChunkMessages(src, maxPayload)].map((c) => c.bytes);
  const bytes = encoded.reduce((a, b) => a + b.byteLength, 0);
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
      for (const _ of kvChunkMessages(src, maxPayload));
    }),
    decodeMBps: rate(() => {
      for (const b of encoded) decodeMessage(b, SUBJECT_TYPES.kv);
    }),
    crcMBps: rate(() => void kvChunkChecksum(src.pages)),
  };
}
