// Part (c) of the transfer bench: on a running in-process cluster, requests one at a time through the
// gateway's backend (NATS + BullMQ, the path the HTTP routes take, minus HTTP), each with an id of ours so
// the watch can subscribe to its exact tokens subject; returns each request's timeline from HandoffWatch.
import { wireSubjects } from '@latentwire/protocol';
import { seededRandom } from '@latentwire/testing';
import type { Row } from './report.js';
import { summarize } from './stats.js';
import type { BenchCluster } from './cluster.js';
import { HandoffWatch, type HandoffTimes } from './handoff-watch.js';

export interface HandoffOptions {
  readonly requests: number;
  /** Requests run first and not counted (pipeline compilation, first connections). */
  readonly warmup: number;
  readonly promptTokens: number;
  readonly maxTokens: number;
}

export interface HandoffSample extends HandoffTimes {
  readonly start: number;
  /** The first event out of the gateway backend's generate(). */
  readonly firstEvent: number;
}

export async function measureHandoff(cluster: BenchCluster, o: HandoffOptions): Promise<HandoffSample[]> {
  const cfg = cluster.decode[0]!.stack.folder.config;
  const watch = await HandoffWatch.start(cluster.nc, wireSubjects(cluster.prefix), cluster.decode.map((d) => d.id), cfg.numLayers);
  const rand = seededRandom(7);
  const out: HandoffSample[] = [];
  try {
    for (let i = 0; i < o.warmup + o.requests; i++) {
      const requestId = `handoff-${i}`;
      // ids 0 and 1 are bos/eos in the tiny model; any others make a valid prompt
      const promptIds = Array.from({ length: o.promptTokens }, () => 2 + Math.floor(rand() * (cfg.vocabSize - 2)));
      await watch.expect(requestId);
      const start = performance.now();
      let firstEvent: number | undefined;
      const events = cluster.gateway.backend.generate({
        requestId, promptIds, maxTokens: o.maxTokens, sampling: { temperature: 0, topK: 0, topP: 1, seed: i }, stopTokenIds: [], ignoreEos: true,
      }, new AbortController().signal);
      for await (const _ of events) firstEvent ??= performance.now();
      if (firstEvent === undefined) throw new Error(`${requestId}: no tokens`);
      if (i >= o.warmup) out.push({ ...watch.times.get(requestId), start, firstEvent });
    }
  } finally {
    watch.stop();
  }
  return out;
}

/** The timeline cut into stages (ms): p50/p99/mean/max over the samples; `headline` is chunk → tokens. */
export function handoffRows(samples: readonly HandoffSample[]): { rows: Row[]; headline: Row } {
  const gap = (a?: number, b?: number) => (a === undefined || b === undefined ? undefined : a - b);
  const stage = (name: string, f: (x: HandoffSample) => number | undefined) => {
    const t = summarize(samples.map(f).filter((x): x is number => x !== undefined));
    return { stage: name, n: t.n, 'p50 ms': t.p50, 'p99 ms': t.p99, 'mean ms': t.mean, 'max ms': t.max };
  };
  const headline = stage('* last kv-chunk → first tokens msg', (x) => gap(x.firstTokens, x.lastChunk));
  const rows = [
    stage('last kv-chunk → last kv-ack', (x) => gap(x.lastAck, x.lastChunk)),
    stage('last kv-ack → prefill-done', (x) => gap(x.prefillDone, x.lastAck)),
    stage('prefill-done → first tokens msg', (x) => gap(x.firstTokens, x.prefillDone)),
    headline,
    stage('first tokens msg → gateway event', (x) => gap(x.firstEvent, x.firstTokens)),
    stage('request → gateway first event (TTFT)', (x) => x.firstEvent - x.start),
  ];
  return { rows, headline };
}
