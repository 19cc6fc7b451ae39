// The real send path of the transfer bench: prefill-node's own KvSender and SendWindows, fed synthetic page
// bytes layer after layer with no GPU compute in between (what PrefillStream.onLayer hands it, as fast as
// it can take it), so the time is the transfer's alone: cutting pages into kv-chunks sized to max_payload,
// CRC-32, msgpack encoding, the per-destination byte window, the requests and their kv-acks.
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { WireRejections, type WireSubjects } from '@latentwire/protocol';
import { ChunkBuffers, KvSender, PrefillMetrics, SendWindows, type KvDestination, type KvSendContext } from '@latentwire/prefill-node';

/** What PrefillWorkerService builds for its jobs, with its own registry and a silent logger. */
export function benchSendContext(nc: NatsConnection, subjects: WireSubjects, windowBytes: number, ackTimeoutMs: number): KvSendContext {
  const registry = new Registry();
  const logger = pino({ level: 'silent' });
  return {
    nc, subjects, ackTimeoutMs, logger,
    windows: new SendWindows(windowBytes),
    buffers: new ChunkBuffers(),
    metrics: new PrefillMetrics(registry),
    rejections: new WireRejections({ logger, registry }),
  };
}

/**
 * Sends one request's KV: `layers` layers of `pages` (contiguous page bytes for dest.tokens tokens, the same
 * bytes each layer), then waits for every kv-ack. Returns the wall time in ms.
 */
export async function sendRequestKv(ctx: KvSendContext, dest: KvDestination, layers: number, pages: Uint8Array): Promise<number> {
  const sender = new KvSender(ctx, dest, new AbortController().signal);
  const t0 = performance.now();
  for (let layer = 0; layer < layers; layer++) await sender.sendLayer(layer, pages);
  await sender.flush();
  return performance.now() - t0;
}
