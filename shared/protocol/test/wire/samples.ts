// One valid message of every type, random (never zero) KV bytes, and raw msgpack for crafting bad input.
import { Packr } from 'msgpackr';
import { latentKvLayout, latentLayoutKey, pagesFor, type KvDtype } from '@latentwire/protocol';
import { seededRandom } from '@latentwire/testing';
import {
  cancelAckMessage, cancelMessage, gatewayHeartbeatMessage, heartbeatMessage, pingMessage, pongMessage, prefillHeartbeatMessage, renewMessage, replayMessage, kvAckMessage, kvChunkMessage, prefillDoneAckMessage, prefillDoneMessage,
  prefillFailedMessage, reserveMessage, reserveReplyMessage, tokensMessage, type KvLayerPages, type MessageType, type WireMessage,
} from '../../src/wire/index.js';

/** A plain msgpackr, independent of the codec's, for writing messages the codec would never write. */
export const rawPackr = new Packr({ useRecords: false });
export const rawPack = (x: unknown): Uint8Array => rawPackr.pack(x);
/** The message with fields replaced (undefined = removed), packed without validation. */
export function tampered(m: WireMessage, patch: Record<string, unknown>): Uint8Array {
  const o: Record<string, unknown> = { ...m };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete o[k];
    else o[k] = v;
  }
  return rawPack(o);
}

export function randomBytes(n: number, seed: number): Uint8Array {
  const r = seededRandom(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 + Math.floor(r() * 255); // never zero
  return out;
}

export const E4M3 = latentKvLayout({ dtype: 'fp8_e4m3', kvLoraRank: 512, ropeDim: 64, pageSize: 64 });
export const E4M3_KEY = latentLayoutKey(E4M3);
export const FINGERPRINT = 'a3f1'.repeat(16);

/**
 * One layer's pages for tokens [0, tokens), random (never zero) where tokens are, zero in the unfilled
 * slots of the last page (as a receiver that starts from zeroed pages would hold them).
 */
export function layerPages(args: { dtype: KvDtype; pageSize: number; tokens: number; layer?: number; seed?: number; kvLoraRank?: number }): KvLayerPages {
  const layout = latentKvLayout({ dtype: args.dtype, kvLoraRank: args.kvLoraRank ?? 512, ropeDim: 64, pageSize: args.pageSize });
  const pages = randomBytes(pagesFor(layout, args.tokens) * layout.pageBytes, args.seed ?? 1);
  const filled = args.tokens % layout.pageSize, last = (pagesFor(layout, args.tokens) - 1) * layout.pageBytes;
  if (filled > 0) {
    pages.fill(0, last + filled * layout.rowBytes, last + layout.scalesOffset);
    pages.fill(0, last + layout.scalesOffset + filled * layout.scaleBytes, last + layout.pageBytes);
  }
  return { requestId: 'req-7f3a.1', layer: args.layer ?? 5, layout, tokens: args.tokens, pages };
}

/** One valid message of every type. The kv-chunk: tokens [70, 74) of page 1 (64-token pages), fp8_e4m3. */
export function samples(): { readonly [T in MessageType]: Extract<WireMessage, { type: T }> } {
  const requestId = 'req-7f3a.1';
  return {
    heartbeat: heartbeatMessage({
      nodeId: 'decode-0', fingerprint: FINGERPRINT, layoutKey: E4M3_KEY, kvDtype: 'fp8_e4m3', pageSize: 64,
      totalPages: 4096, freePages: 1000, running: 12, waiting: 3, maxBatch: 64, maxContext: 32768, seq: 41, sentAt: 1_767_225_600_123,
      model: 'DeepSeek-V2-Lite-Chat', reservedPages: 40, tokensOut: 5_000_000_000, startedAt: 1_767_225_000_000,
    }),
    reserve: reserveMessage({
      requestId, promptTokens: 74, maxTokens: 256, sampling: { temperature: 0.7, topK: 40, topP: 0.95, seed: 12345 },
      stopTokenIds: [100, 101], eosTokenIds: [1], fingerprint: FINGERPRINT, layoutKey: E4M3_KEY,
    }),
    'reserve-reply': reserveReplyMessage({ requestId, ok: true, pages: 6, freePages: 994, leaseMs: 30_000 }),
    'kv-chunk': kvChunkMessage({ requestId, layer: 5, layoutKey: E4M3_KEY, tokenStart: 70, tokenCount: 4, data: randomBytes(4 * E4M3.tokenBytes, 11) }),
    'kv-ack': kvAckMessage({ requestId, layer: 5, tokenStart: 70, ok: true }),
    'prefill-done': prefillDoneMessage({
      requestId, promptTokens: 74, layers: 27, firstToken: 128_000, layoutKey: E4M3_KEY, fingerprint: FINGERPRINT,
    }),
    'prefill-done-ack': prefillDoneAckMessage({ requestId, ok: false, reason: 'incomplete', detail: 'layer 26 page 1 missing' }),
    'prefill-failed': prefillFailedMessage({ requestId, reason: 'GPU device lost' }),
    cancel: cancelMessage({ requestId, reason: 'client-disconnected' }),
    tokens: tokensMessage({ requestId, seq: 9, tokens: [], finishReason: 'stop', usage: { promptTokens: 74, completionTokens: 31 } }),
    renew: renewMessage({ requestIds: [requestId, 'req-7f3a.2'] }),
    'cancel-ack': cancelAckMessage({ requestId, ended: true }),
    ping: pingMessage({ nonce: 7 }),
    pong: pongMessage({ nodeId: 'decode-0', nonce: 7, draining: true }),
    'gateway-heartbeat': gatewayHeartbeatMessage({ gatewayId: 'gw-1.a', seq: 3, intervalMs: 1000, sentAt: 1_767_225_600_123 }),
    replay: replayMessage({ requestId, fromSeq: 4 }),
    'prefill-heartbeat': prefillHeartbeatMessage({ workerId: 'prefill-0', seq: 9, intervalMs: 1000, sentAt: 1_767_225_600_123, jobs: [requestId], maxPromptTokens: 65535 }),
  };
}
