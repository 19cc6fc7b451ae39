// The cluster backend's Prometheus metrics, on a registry the caller owns (main serves it on /metrics;
// tests pass a fresh one each so metric names never collide).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type AdmissionOutcome = 'granted' | 'too_large' | 'no_nodes' | 'no_prefill' | 'prefill_backlog' | 'queue_full' | 'wait_timeout' | 'aborted';
export type RequestOutcome = 'stop' | 'length' | 'error' | 'cancelled';

/**
 * Where a request's time to first token went, in order. admission: waiting for a node with room (and
 * unsuccessful reserve rounds); reservation: the granting reserve's round trip; queue: the prefill job from
 * enqueue to a worker taking it (the prefill node's clock against the gateway's: skew between hosts lands
 * here); prefill: the forward pass; kv_transfer: from the forward's end to the last kv-ack; first_token:
 * the rest (prefill-done round trip, the decode node's commit, the tokens message to the gateway).
 * Without the prefill's timing (an older prefill or decode node), enqueue to first token is one phase, 'unsplit'.
 */
export const TTFT_PHASES = ['admission', 'reservation', 'queue', 'prefill', 'kv_transfer', 'first_token', 'unsplit'] as const;
export type TtftPhase = (typeof TTFT_PHASES)[number];

/** Seconds, from a local reserve round trip to a long queue wait. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class ClusterMetrics {
  readonly admissions: Counter<'outcome'>;
  readonly reserves: Counter<'result'>;
  readonly requests: Counter<'outcome'>;
  readonly ttftPhases: Histogram<'phase'>;
  /** Requests started over elsewhere before their first token: 'prefill_lost' or 'node_draining'. */
  readonly resumes: Counter<'why'>;
  /** Replays asked of decode nodes (a hole in a request's seq, or every open stream after a NATS reconnect). */
  readonly replays: Counter<'why'>;
  /** Cancels to decode nodes by how they ended: acked, no_responders, unacked, closed. */
  readonly cancels: Counter<'outcome'>;

  constructor(registry: Registry, live: { nodes(): number; waiting(): number; prefillBacklogTokens?(): number }) {
    const registers = [registry];
    this.admissions = new Counter({
      name: 'latentwire_gateway_admissions_total',
      help: 'Requests admitted to a decode node or refused, by outcome',
      labelNames: ['outcome'] as const,
      registers,
    });
    this.reserves = new Counter({
      name: 'latentwire_gateway_reserve_requests_total',
      help: 'Reserve requests sent to decode nodes, by result (ok or the refusal or transport failure)',
      labelNames: ['result'] as const,
      registers,
    });
    this.requests = new Counter({
      name: 'latentwire_gateway_requests_ended_total',
      help: 'Admitted requests by how they ended (stop and length include the gateway\'s own stops: stop strings, max_tokens; cancelled: the client left or the gateway shut down)',
      labelNames: ['outcome'] as const,
      registers,
    });
    this.ttftPhases = new Histogram({
      name: 'latentwire_gateway_ttft_phase_seconds',
      help: `Time to first token by phase (${TTFT_PHASES.join(', ')}; see cluster/metrics.ts)`,
      labelNames: ['phase'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.resumes = new Counter({
      name: 'latentwire_gateway_resumes_total',
      help: 'Requests started over on another prefill worker or decode node, by why (prefill_lost, node_draining: before the first token; node_lost: resumed from the tokens already sent)',
      labelNames: ['why'] as const,
      registers,
    });
    this.replays = new Counter({
      name: 'latentwire_gateway_token_replays_total',
      help: 'Replays of tokens messages asked of decode nodes, by why (gap: a hole in seq; reconnect: after a NATS reconnect)',
      labelNames: ['why'] as const,
      registers,
    });
    this.cancels = new Counter({
      name: 'latentwire_gateway_node_cancels_total',
      help: 'Cancels sent to decode nodes, by outcome (acked; no_responders: the node is gone; unacked: given up after CANCEL_ATTEMPTS; closed)',
      labelNames: ['outcome'] as const,
      registers,
    });
    new Gauge({
      name: 'latentwire_gateway_prefill_backlog_tokens',
      help: 'Prompt tokens of this gateway\'s requests admitted and not yet prefilled (the backlog PREFILL_QUEUE_MAX_WAIT_MS is judged by)',
      registers,
      collect() {
        this.set(live.prefillBacklogTokens?.() ?? 0);
      },
    });
    new Gauge({
      name: 'latentwire_gateway_decode_nodes',
      help: 'Live decode nodes serving the gateway model',
      registers,
      collect() {
        this.set(live.nodes());
      },
    });
    new Gauge({
      name: 'latentwire_gateway_admission_waiting',
      help: 'Requests waiting for KV pages',
      registers,
      collect() {
        this.set(live.waiting());
      },
    });
  }
}
