// The decode service's Prometheus metrics, on the registry it is given (refused wire messages are counted
// by WireRejections as latentwire_wire_rejected_total on the same registry).
import { Counter, Gauge, type Registry } from 'prom-client';
import type { FinishReason } from '../scheduler/index.js';
import type { DecodeEngine } from '../engine/engine.js';

/** Which request/reply answered ok:false, and why (the wire's refusal reasons). */
export type RefusedMessage = 'reserve' | 'kv-chunk' | 'prefill-done';

export class DecodeMetrics {
  readonly admitted: Counter;
  readonly finished: Counter<'reason'>;
  readonly kvBytes: Counter;
  readonly refused: Counter<'message' | 'reason'>;

  constructor(registry: Registry, engine: DecodeEngine) {
    const registers = [registry];
    this.admitted = new Counter({
      name: 'latentwire_decode_requests_admitted_total', help: 'Requests whose prefill-done was accepted and that joined the batch', registers,
    });
    this.finished = new Counter({
      name: 'latentwire_decode_requests_finished_total', help: 'Admitted requests that finished, by finish reason', labelNames: ['reason'] as const, registers,
    });
    this.kvBytes = new Counter({
      name: 'latentwire_decode_kv_bytes_total', help: 'KV bytes (rows and scales) received in kv-chunks and written to the cache', registers,
    });
    this.refused = new Counter({
      name: 'latentwire_decode_refusals_total', help: 'Valid requests answered ok:false, by message type and reason', labelNames: ['message', 'reason'] as const, registers,
    });
    new Gauge({
      name: 'latentwire_decode_free_pages', help: 'KV cache pages neither in use nor reserved', registers,
      collect() { this.set(engine.stats().freePages); },
    });
    new Gauge({
      name: 'latentwire_decode_total_pages', help: 'KV cache pages in the pool', registers,
      collect() { this.set(engine.stats().totalPages); },
    });
  }

  finish(reason: FinishReason): void {
    this.finished.inc({ reason });
  }

  refuse(message: RefusedMessage, reason: string): void {
    this.refused.inc({ message, reason });
  }
}
