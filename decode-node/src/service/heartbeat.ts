// The heartbeat a decode node publishes: what it serves and how full it is (the gateway routes by it), plus
// what the operators' cluster view shows (model name, reserved pages, tokens sent, start time).
import { basename } from 'node:path';
import { heartbeatMessage, type Heartbeat } from '@latentwire/protocol';
import type { DecodeEngine } from '../engine/engine.js';
import type { NodeIdentity } from './context.js';

/** What the service counts itself, beside the engine's stats. */
export interface NodeCounters {
  /** Completion tokens sent since start. */
  readonly tokensOut: number;
  /** ms since the epoch. */
  readonly startedAt: number;
}

/** The wire's model label (printable ASCII without spaces) for a model folder, or undefined if its name is not one. */
export function modelLabel(dir: string | undefined): string | undefined {
  const name = dir === undefined ? '' : basename(dir.replace(/[/\\]+$/, ''));
  return /^[\x21-\x7e]{1,256}$/.test(name) ? name : undefined;
}

export function heartbeatOf(
  node: NodeIdentity, engine: DecodeEngine, seq: number, counters?: NodeCounters, now = Date.now(), draining = false,
): Heartbeat {
  const s = engine.stats();
  return heartbeatMessage({
    nodeId: node.nodeId, fingerprint: node.fingerprint, layoutKey: node.layoutKey, kvDtype: node.layout.dtype,
    pageSize: node.layout.pageSize, totalPages: s.totalPages, freePages: s.freePages,
    // committed handoffs waiting for a batch slot count as waiting
    running: s.running, waiting: s.waiting + s.ready,
    maxBatch: engine.model.opts.maxBatch, maxContext: engine.model.opts.maxContext,
    model: node.model, reservedPages: s.reservedPages, tokensOut: counters?.tokensOut, startedAt: counters?.startedAt,
    seq: seq >>> 0, sentAt: now, draining: draining || undefined,
  });
}
