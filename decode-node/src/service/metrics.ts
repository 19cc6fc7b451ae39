// The decode service's Prometheus metrics, on the registry it is given (refused wire messages are counted
// by WireRejections as latentwire_wire_rejected_total on the same registry).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { FinishReason } from '../scheduler/index.js';
import type { DecodeEngine } from '../engine/engine.js';

/** Which request/reply answered ok:false, and why (the wire's refusal reasons). */
export type RefusedMessage = 'reserve' | 'kv-chunk' | 'prefill-done';

export class DecodeMetrics {
  readonly admitted: Counter;
  readonly finished: Counter<'reason'>;
  readonly kvBytes: Counter;
  readonly refused: Counter<'message' | 'reason'>;
  readonly tokensOut: Counter;
  readonly stepSeconds: Histogram;
  readonly stepBatch: Histogram;

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
    this.tokensOut = new Counter({
      name: 'latentwire_decode_tokens_out_total', help: 'Completion tokens sent to the gateway in tokens messages (the prefill\'s first token included)', registers,
    });
    this.stepSeconds = new Histogram({
      name: 'latentwire_decode_step_seconds', help: 'Decode steps from building the batch to reading its tokens back (overlapped steps overlap)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5], registers,
    });
    this.stepBatch = new Histogram({
      name: 'latentwire_decode_step_batch_size', help: 'Sequences in each decode step\'s batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers,
    });
    engine.onStep = (s) => {
      this.stepSeconds.observe(s.ms / 1000);
      this.stepBatch.observe(s.batch);
    };
    new Gauge({
      name: 'latentwire_decode_sequences', help: 'Sequences by state: running (in the batch), waiting (for pages or a batch slot), reserved (pages held for a prefill\'s KV)',
      labelNames: ['state'] as const, registers,
      collect() {
        const st = engine.stats();
        this.set({ state: 'running' }, st.running);
        this.set({ state: 'waiting' }, st.waiting + st.ready);
        this.set({ state: 'reserved' }, st.reserved);
      },
    });
    new Gauge({
      name: 'latentwire_decode_pages', help: 'KV cache pages by state: used (by sequences), reserved (leases awaiting KV), free',
      labelNames: ['state'] as const, registers,
      collect() {
        const st = engine.stats();
        this.set({ state: 'used' }, st.totalPages - st.freePages - st.reservedPages);
        this.set({ state: 'reserved' }, st.reservedPages);
        this.set({ state: 'free' }, st.freePages);
      },
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
