// The cluster backend's Prometheus metrics, on a registry the caller owns (main serves it on /metrics;
// tests pass a fresh one each so metric names never collide).
import { Counter, Gauge, type Registry } from 'prom-client';

export type AdmissionOutcome = 'granted' | 'too_large' | 'no_nodes' | 'queue_full' | 'wait_timeout' | 'aborted';
export type RequestOutcome = 'stop' | 'length' | 'error' | 'cancelled';

export class ClusterMetrics {
  readonly admissions: Counter<'outcome'>;
  readonly reserves: Counter<'result'>;
  readonly requests: Counter<'outcome'>;

  constructor(registry: Registry, live: { nodes(): number; waiting(): number }) {
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
      help: 'Admitted requests by how they ended (cancelled: by the client or the gateway before the node finished)',
      labelNames: ['outcome'] as const,
      registers,
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
