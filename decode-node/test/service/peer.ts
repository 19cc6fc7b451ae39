// The other side of the decode node in its integration tests: a gateway that reserves and reads tokens, and
// a prefill node that sends KV (real prefill output, or filler bytes) and prefill-done, all over real NATS.
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { latentLayoutKey, pagesFor, type LatentKvLayout } from '@latentwire/protocol';
import type { PrefillModel } from '@latentwire/gpu/prefill';
import {
  cancelMessage, decodeMessage, encodeMessage, KvChunkQueue, kvChunkMessage, kvChunkMessages, kvChunkTokens, maxPayloadOf, runData, prefillDoneMessage, prefillFailedMessage, reserveMessage,
  SUBJECT_TYPES,
  type KvAck, type KvChunk, type PrefillDone, type Reserve, type ReserveReply, type Tokens, type WireSubjects,
} from '@latentwire/protocol';

export const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 } as const;

export class Peer {
  constructor(
    readonly nc: NatsConnection, readonly subjects: WireSubjects, readonly nodeId: string,
    readonly fingerprint: string, readonly layout: LatentKvLayout,
  ) {}

  get layoutKey(): string {
    return latentLayoutKey(this.layout);
  }

  /** A greedy reserve with no stop ids unless `over` says otherwise. */
  async reserve(requestId: string, promptTokens: number, maxTokens: number, over: Partial<Reserve> = {}): Promise<ReserveReply> {
    const m = reserveMessage({
      requestId, promptTokens, maxTokens, sampling: GREEDY, stopTokenIds: [], eosTokenIds: [], fingerprint: this.fingerprint,
      layoutKey: this.layoutKey, ...over,
    });
    return decodeMessage((await this.request(this.subjects.reserve(this.nodeId), encodeMessage(m))).data, SUBJECT_TYPES.reserveReply);
  }

  /**
   * One layer's contiguous pages (the prefill's stream format) as kv-chunks filling max_payload; every ack.
   * With skipPage, chunks that never cross a page end, and that page's are not sent.
   */
  async sendLayer(requestId: string, layer: number, pages: Uint8Array, tokens: number, skipPage?: number): Promise<KvAck[]> {
    const l = this.layout;
    const maxPayload = maxPayloadOf(this.nc);
    let chunks: Uint8Array[];
    if (skipPage === undefined) {
      chunks = [...kvChunkMessages({ requestId, layer, layout: l, tokens, pages }, maxPayload)].map((c) => c.bytes);
    } else {
      const per = Math.min(l.pageSize, kvChunkTokens(l, requestId, layer, maxPayload));
      chunks = [];
      for (let p = 0; p < pagesFor(l, tokens); p++) {
        if (p === skipPage) continue;
        for (let t = p * l.pageSize, end = Math.min(tokens, (p + 1) * l.pageSize); t < end; t += per) {
          const n = Math.min(per, end - t);
          chunks.push(encodeMessage(kvChunkMessage({ requestId, layer, layoutKey: this.layoutKey, tokenStart: t, tokenCount: n, data: runData(l, pages, t, n) })));
        }
      }
    }
    const acks: KvAck[] = [];
    for (const c of chunks) acks.push(decodeMessage((await this.request(this.subjects.kv(this.nodeId), c)).data, SUBJECT_TYPES.kvReply));
    return acks;
  }

  /** Every layer's pages filled with zeros (valid in every dtype: 0 and scale 0), for handoffs whose tokens don't matter. */
  async sendFiller(requestId: string, layers: number, tokens: number, skip?: { layer: number; page: number }): Promise<KvAck[]> {
    const pages = new Uint8Array(pagesFor(this.layout, tokens) * this.layout.pageBytes);
    const acks: KvAck[] = [];
    for (let layer = 0; layer < layers; layer++) acks.push(...await this.sendLayer(requestId, layer, pages, tokens, skip?.layer === layer ? skip.page : undefined));
    return acks;
  }

  /** Runs the real prefill, streaming each layer's KV as it is computed; gives the sampled first token. */
  async prefill(model: PrefillModel, requestId: string, ids: readonly number[], opts: { packLayers?: boolean } = {}): Promise<{ firstToken: number; acks: KvAck[]; chunks: KvChunk[] }> {
    const acks: KvAck[] = [];
    const chunks: KvChunk[] = [];
    // packLayers: every layer queued first, then cut into chunks that span layers (a sender whose window was full)
    const queue = opts.packLayers ? new KvChunkQueue(requestId, this.layout, ids.length) : null;
    const out = await model.prefill(ids, {
      stream: {
        layout: this.layout,
        onLayer: async (layer, pages) => {
          if (queue) queue.push(layer, pages);
          else acks.push(...await this.sendLayer(requestId, layer, pages, ids.length));
        },
      },
      sample: { ...GREEDY, counter: 0 },
    });
    out.release();
    for (let c = queue?.next(maxPayloadOf(this.nc)); c; c = queue!.next(maxPayloadOf(this.nc))) {
      chunks.push(c.message);
      acks.push(decodeMessage((await this.request(this.subjects.kv(this.nodeId), c.bytes)).data, SUBJECT_TYPES.kvReply));
    }
    return { firstToken: out.token!, acks, chunks };
  }

  async prefillDone(f: Partial<PrefillDone> & Pick<PrefillDone, 'requestId' | 'promptTokens' | 'firstToken'>, layers: number) {
    const m = prefillDoneMessage({ layers, layoutKey: this.layoutKey, fingerprint: this.fingerprint, ...f });
    return decodeMessage((await this.request(this.subjects.control(this.nodeId), encodeMessage(m))).data, SUBJECT_TYPES.controlReply);
  }

  prefillFailed(requestId: string): void {
    this.nc.publish(this.subjects.control(this.nodeId), encodeMessage(prefillFailedMessage({ requestId, reason: 'GPU lost' })));
  }

  cancel(requestId: string): void {
    this.nc.publish(this.subjects.control(this.nodeId), encodeMessage(cancelMessage({ requestId, reason: 'client-disconnected' })));
  }

  /** Subscribes to a request's tokens; once the server has the subscription, gives `done`: every message, once the final one arrived. */
  async tokens(requestId: string, onMessage?: (m: Tokens) => void, timeoutMs = 60_000): Promise<{ done: Promise<Tokens[]> }> {
    const got: Tokens[] = [];
    const sub = this.nc.subscribe(this.subjects.tokens(requestId));
    await this.nc.flush();
    const timer = setTimeout(() => sub.unsubscribe(), timeoutMs); // ends the loop below without a final message
    const done = (async () => {
      for await (const msg of sub) {
        const m = decodeMessage(msg.data, SUBJECT_TYPES.tokens);
        got.push(m);
        onMessage?.(m);
        if (m.finishReason) break;
      }
      clearTimeout(timer);
      sub.unsubscribe();
      return got;
    })();
    return { done };
  }

  private request(subject: string, bytes: Uint8Array): Promise<Msg> {
    return this.nc.request(subject, bytes, { timeout: 10_000 });
  }
}

/** Polls `check` every 10 ms until it holds; returns the ms it took, or throws after timeoutMs. */
export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - start;
}
