// What the message handlers share: the engine, what this node serves (the identity its heartbeats announce
// and reserve / kv-chunk / prefill-done are checked against), the handoffs in flight, metrics and the log.
import type { Logger } from 'pino';
import { latentLayoutKey, type LatentKvLayout } from '@latentwire/protocol';
import type { DecodeEngine } from '../engine/engine.js';
import type { Handoffs } from './handoffs.js';
import type { DecodeMetrics } from './metrics.js';

export interface NodeIdentity {
  readonly nodeId: string;
  /** The served checkpoint's fingerprint (ModelFolder.fingerprint). */
  readonly fingerprint: string;
  /** The served model's name for people (its folder's name), when it is a wire label. */
  readonly model: string | undefined;
  readonly layout: LatentKvLayout;
  /** latentLayoutKey(layout). */
  readonly layoutKey: string;
  readonly layers: number;
  readonly vocabSize: number;
}

export function nodeIdentity(nodeId: string, fingerprint: string, engine: DecodeEngine, model?: string): NodeIdentity {
  const layout = engine.model.cache.layout;
  return Object.freeze({
    nodeId, fingerprint, model, layout, layoutKey: latentLayoutKey(layout),
    layers: engine.model.cfg.numLayers, vocabSize: engine.model.cfg.vocabSize,
  });
}

export interface ServiceContext {
  /**
   * Ends a request that never reached decoding (its handoff was refused, its prefill failed or its lease ran
   * out) for the gateway too: one final tokens message with finish reason 'error', so the client gets an
   * answer at once instead of waiting out the gateway's idle timeout.
   */
  failRequest(requestId: string, detail: string): void;
  readonly engine: DecodeEngine;
  readonly node: NodeIdentity;
  readonly handoffs: Handoffs;
  readonly metrics: DecodeMetrics;
  readonly logger: Logger;
}
