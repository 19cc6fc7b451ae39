// The prefill node's Prometheus metrics. Labels are closed sets (never a request or node id from a job).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export const JOB_OUTCOMES = [
  'completed', // every chunk and the prefill-done were acknowledged
  'cancelled', // the gateway's cancel broadcast stopped it (before or while it ran)
  'gone', // the decode node answered 'cancelled' or 'no-reservation': nobody wants the KV any more
  'rejected', // retrying cannot help (invalid job, other model, deadline passed, layout refused): failed at once
  'retry', // a retryable failure with attempts left: BullMQ retries it after its backoff
  'failed', // a retryable failure on the last attempt: prefill-failed sent to the decode node
] as const;
export type JobOutcome = (typeof JOB_OUTCOMES)[number];

/** The BullMQ states the queue depth gauge reports (completed and failed jobs are history, not depth). */
export const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'active'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

export class PrefillMetrics {
  readonly jobs: Counter<'outcome'>;
  readonly kvBytes: Counter;
  readonly kvChunks: Counter;
  readonly ackWait: Histogram;
  readonly inFlightBytes: Gauge;
  readonly jobSeconds: Histogram<'outcome'>;
  readonly forwardSeconds: Histogram;
  readonly queueWaitSeconds: Histogram;
  readonly promptTokens: Counter;
  /** Set by the worker once it has a queue handle: the prefill queue's job counts for the depth gauge. */
  queueCounts: (() => Promise<Partial<Record<QueueState, number>>>) | null = null;

  constructor(registry: Registry) {
    // Reuse what is already registered, so two services on one registry (tests, one process) share them.
    const one = <M>(name: string, make: () => M): M => (registry.getSingleMetric(name) as M | undefined) ?? make();
    const registers = [registry];
    this.jobs = one('latentwire_prefill_jobs_total', () => new Counter({
      name: 'latentwire_prefill_jobs_total', help: 'Prefill jobs by outcome (one count per attempt)', labelNames: ['outcome'] as const, registers,
    }));
    this.kvBytes = one('latentwire_prefill_kv_bytes_total', () => new Counter({
      name: 'latentwire_prefill_kv_bytes_total', help: 'Encoded kv-chunk bytes sent to decode nodes', registers,
    }));
    this.kvChunks = one('latentwire_prefill_kv_chunks_total', () => new Counter({
      name: 'latentwire_prefill_kv_chunks_total', help: 'kv-chunk requests sent to decode nodes', registers,
    }));
    this.ackWait = one('latentwire_prefill_kv_ack_wait_seconds', () => new Histogram({
      name: 'latentwire_prefill_kv_ack_wait_seconds', help: 'Time from sending a kv-chunk to its kv-ack',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
    }));
    this.inFlightBytes = one('latentwire_prefill_kv_in_flight_bytes', () => new Gauge({
      name: 'latentwire_prefill_kv_in_flight_bytes', help: 'kv-chunk bytes sent and not yet acknowledged, all decode nodes', registers,
    }));
    this.jobSeconds = one('latentwire_prefill_job_seconds', () => new Histogram({
      name: 'latentwire_prefill_job_seconds', help: 'Prefill job attempts from start to the last ack, by outcome', labelNames: ['outcome'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers,
    }));
    this.forwardSeconds = one('latentwire_prefill_forward_seconds', () => new Histogram({
      name: 'latentwire_prefill_forward_seconds', help: 'The forward pass of completed jobs (KV streams out meanwhile; the ack tail is not included)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers,
    }));
    this.queueWaitSeconds = one('latentwire_prefill_queue_wait_seconds', () => new Histogram({
      name: 'latentwire_prefill_queue_wait_seconds', help: 'Completed jobs from enqueue (the gateway\'s clock) to the attempt\'s start (this node\'s clock); retries include earlier attempts',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers,
    }));
    this.promptTokens = one('latentwire_prefill_prompt_tokens_total', () => new Counter({
      name: 'latentwire_prefill_prompt_tokens_total', help: 'Prompt tokens of completed jobs', registers,
    }));
    const self = this;
    one('latentwire_prefill_queue_jobs', () => new Gauge({
      name: 'latentwire_prefill_queue_jobs', help: 'Jobs in the prefill queue (shared by every prefill node), by BullMQ state', labelNames: ['state'] as const, registers,
      async collect() {
        const counts = await self.queueCounts?.().catch(() => undefined);
        if (!counts) return;
        for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
      },
    }));
  }
}
