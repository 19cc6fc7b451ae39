// The transfer ceiling: NATS alone carrying messages of the kv path's sizes from the sender's connection
// to the decode side's (another thread, lib/decode-side.ts), with nothing encoded, checksummed, validated or
// copied on either side. Both modes keep at most `window` bytes outstanding, like the prefill node's
// per-destination send window:
//   publish        one-way; the window counts bytes the receiver has not yet seen (no replies at all)
//   request/reply  each message waits for a small reply (the kv-ack's bytes), as kv-chunks do
// plus the round trip of one small request at a time (the latency floor of every ack).
import type { NatsConnection } from '@nats-io/transport-node';
import { SendWindows } from '@latentwire/prefill-node';
import type { DecodeSide } from './decode-side.js';

export interface RawResult {
  readonly messages: number;
  readonly bytes: number;
  readonly seconds: number;
}

export async function rawPublish(from: NatsConnection, to: DecodeSide, subject: string, payload: Uint8Array, messages: number, window: number): Promise<RawResult> {
  await to.count(subject);
  const received = () => Atomics.load(to.counter, 0);
  const t0 = performance.now();
  for (let i = 0; i < messages; i++) {
    for (let seen = received(); (i - seen) * payload.byteLength >= window; seen = received()) await to.counterChange(seen);
    from.publish(subject, payload);
  }
  for (let seen = received(); seen < messages; seen = received()) await to.counterChange(seen);
  const seconds = (performance.now() - t0) / 1e3;
  await to.unsubscribe(subject);
  return { messages, bytes: messages * payload.byteLength, seconds };
}

export async function rawRequestReply(
  from: NatsConnection, to: DecodeSide, subject: string, payload: Uint8Array, reply: Uint8Array, messages: number, window: number,
): Promise<RawResult> {
  await to.echo(subject, reply);
  const windows = new SendWindows(window);
  const pending: Promise<unknown>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < messages; i++) {
    const release = await windows.acquire('raw', payload.byteLength);
    pending.push(from.request(subject, payload, { timeout: 30_000 }).finally(release));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - t0) / 1e3;
  await to.unsubscribe(subject);
  return { messages, bytes: messages * payload.byteLength, seconds };
}

/** Round trips (ms) of `n` sequential requests of `payload`, each answered by the same bytes. */
export async function rawRoundTrips(from: NatsConnection, to: DecodeSide, subject: string, payload: Uint8Array, n: number): Promise<number[]> {
  await to.echo(subject, payload);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await from.request(subject, payload, { timeout: 10_000 });
    out.push(performance.now() - t0);
  }
  await to.unsubscribe(subject);
  return out;
}
