// The HTTP layer's Prometheus metrics: what a client sees of each request. Labels are closed sets: the
// endpoint is the matched route's path ('other' when none matched), never the raw URL.
import { Counter, Histogram, type Registry } from 'prom-client';

/** 'none': the request generated nothing (a refusal before admission, /v1/models, /health …). */
export type RequestFinish = 'stop' | 'length' | 'cancelled' | 'error' | 'none';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const ITL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5];

export class ServingMetrics {
  readonly requests: Counter<'endpoint' | 'status' | 'finish_reason'>;
  readonly ttft: Histogram<'endpoint'>;
  readonly itl: Histogram<'endpoint'>;
  readonly e2e: Histogram<'endpoint'>;
  readonly promptTokens: Counter<'endpoint'>;
  readonly completionTokens: Counter<'endpoint'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const endpoint = ['endpoint'] as const;
    this.requests = new Counter({
      name: 'latentwire_gateway_http_requests_total',
      help: 'HTTP requests by endpoint, status (499: the client left first) and finish reason (none: nothing was generated)',
      labelNames: ['endpoint', 'status', 'finish_reason'] as const,
      registers,
    });
    this.ttft = new Histogram({
      name: 'latentwire_gateway_time_to_first_token_seconds',
      help: 'From the request\'s arrival to the first generated token reaching the gateway (latentwire_gateway_ttft_phase_seconds splits it)',
      labelNames: endpoint, buckets: LATENCY_BUCKETS, registers,
    });
    this.itl = new Histogram({
      name: 'latentwire_gateway_inter_token_latency_seconds',
      help: 'Per completion token after the first: the gap since the previous tokens arrived, shared by the tokens of one message',
      labelNames: endpoint, buckets: ITL_BUCKETS, registers,
    });
    this.e2e = new Histogram({
      name: 'latentwire_gateway_e2e_request_latency_seconds',
      help: 'Generation requests from arrival to the end of the response (or the client leaving)',
      labelNames: endpoint, buckets: LATENCY_BUCKETS, registers,
    });
    this.promptTokens = new Counter({
      name: 'latentwire_gateway_prompt_tokens_total', help: 'Prompt tokens of generation requests that reached the backend', labelNames: endpoint, registers,
    });
    this.completionTokens = new Counter({
      name: 'latentwire_gateway_completion_tokens_total', help: 'Completion tokens received from the backend (stop token included, as usage counts them)', labelNames: endpoint, registers,
    });
  }
}
