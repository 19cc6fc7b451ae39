// The prefill node's NATS connect options, one place for main.ts, PrefillWorkerService and the transfer bench.
//
// noAsyncTraces: by default nats.js builds an Error (a stack capture) in every request() so that a failed request
// carries its caller's async stack. Every kv-chunk is a request, and on the GPU machine's 16-core host that
// capture alone cost the send path 5–15% of its rate (85–92% of raw NATS publish with it, 97% without, two
// interleaved runs of 30 requests each, bench/results/transfer-traces.h200.txt). A failed chunk is reported as
// a KvSendError naming its subject, request, layer and token instead.
import { natsConnectOptions, type NatsAuth } from '@latentwire/protocol';

export function prefillConnectOptions(auth: NatsAuth | undefined) {
  return { name: 'latentwire-prefill', noAsyncTraces: true, ...natsConnectOptions(auth) } as const;
}
