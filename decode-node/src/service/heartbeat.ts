// The heartbeat a decode node publishes: what it serves and how full it is (the gateway routes by it).
import { heartbeatMessage, type Heartbeat } from '@latentwire/protocol';
import type { DecodeEngine } from '../engine/engine.js';
import type { NodeIdentity } from './context.js';

export function heartbeatOf(node: NodeIdentity, engine: DecodeEngine, seq: number, now = Date.now(), draining = false): Heartbeat {
  const s = engine.stats();
  return heartbeatMessage({
    nodeId: node.nodeId, fingerprint: node.fingerprint, layoutKey: node.layoutKey, kvDtype: node.layout.dtype,
    pageSize: node.layout.pageSize, totalPages: s.totalPages, freePages: s.freePages,
    // committed handoffs waiting for a batch slot count as waiting
    running: s.running, waiting: s.waiting + s.ready,
    maxBatch: engine.model.opts.maxBatch, maxContext: engine.model.opts.maxContext,
    seq: seq >>> 0, sentAt: now, draining: draining || undefined,
  });
}
