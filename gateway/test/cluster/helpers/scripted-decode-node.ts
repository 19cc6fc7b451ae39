// INTEGRATION-TEST STAND-IN for a decode node, over the real bus: it publishes heartbeats with the figures
// a test sets, answers reserve requests (granting pages by default, or as `onReserve` decides), records
// every cancel on its control subject, and publishes tokens messages when the test (usually on seeing the
// BullMQ prefill job) asks. It has no model: what it "generates" is the ids the test gives it.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  SUBJECT_TYPES, cancelAckMessage, decodeMessage, encodeMessage, heartbeatMessage, pongMessage, reserveReplyMessage, tokensMessage, type Cancel, type FinishReason, type PrefillTiming,
  type Reserve, type ReserveRefusal, type WireSubjects,
} from '@latentwire/protocol';

export const TEST_PAGE_SIZE = 16;
/** The tiny model's latent layout (kv_lora_rank 64, rope 16) in fp8 with 16-token pages. */
export const TEST_LAYOUT_KEY = `latent-v1/fp8_e4m3/r64+16/p${TEST_PAGE_SIZE}`;

export interface NodeFigures {
  draining?: boolean;
  totalPages: number;
  freePages: number;
  running: number;
  waiting: number;
  maxBatch: number;
  maxContext: number;
}

export interface ScriptedNodeOptions extends Partial<NodeFigures> {
  readonly nodeId: string;
  readonly fingerprint: string;
  readonly subjects: WireSubjects;
  readonly natsUrl: string;
  readonly heartbeatMs?: number;
  readonly leaseMs?: number;
  /** Decides a reservation: 'grant' takes the pages, a refusal refuses, 'silent' never answers. Default: by pages. */
  readonly onReserve?: (m: Reserve, node: ScriptedDecodeNode) => 'grant' | ReserveRefusal | 'silent';
}

export class ScriptedDecodeNode {
  readonly figures: NodeFigures;
  readonly reserves: Reserve[] = [];
  /** Cancels received on the control subject, with performance.now() at receipt. */
  readonly cancels: { readonly message: Cancel; readonly at: number }[] = [];
  /** Tokens messages sent, by request and seq (as a real node keeps them for replay). */
  readonly sent = new Map<string, Uint8Array[]>();
  readonly replays: { readonly requestId: string; readonly fromSeq: number }[] = [];
  /** Request ids named in renew messages, in arrival order. */
  readonly renewals: string[] = [];
  /** performance.now() of each grant's latest (re)start of its lease. */
  readonly leases = new Map<string, number>();
  /** Don't acknowledge cancels (as a node that receives but cannot answer). */
  ignoreCancels = false;
  /** Don't answer pings (as a node that is gone or wedged). */
  ignorePings = false;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly opts: ScriptedNodeOptions,
    readonly nc: NatsConnection,
  ) {
    this.figures = {
      totalPages: opts.totalPages ?? 256,
      freePages: opts.freePages ?? opts.totalPages ?? 256,
      running: opts.running ?? 0,
      waiting: opts.waiting ?? 0,
      maxBatch: opts.maxBatch ?? 8,
      maxContext: opts.maxContext ?? 2048,
    };
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  /** The reserve a request came with (its generation settings live there, not in the prefill job). */
  reserveOf(requestId: string): Reserve {
    const m = this.reserves.findLast((r) => r.requestId === requestId);
    if (!m) throw new Error(`no reserve for ${requestId} on ${this.nodeId}`);
    return m;
  }

  static async start(opts: ScriptedNodeOptions): Promise<ScriptedDecodeNode> {
    const node = new ScriptedDecodeNode(opts, await connect({ servers: opts.natsUrl, name: `test-decode-${opts.nodeId}`, reconnectTimeWait: 250, maxReconnectAttempts: -1 }));
    const { subjects } = opts;
    node.nc.subscribe(subjects.reserve(opts.nodeId), {
      callback: (_err, msg) => {
        const m = decodeMessage(msg.data, SUBJECT_TYPES.reserve);
        node.reserves.push(m);
        const decision = (opts.onReserve ?? byPages)(m, node);
        if (decision === 'silent') return;
        const f = node.figures;
        if (decision === 'grant') {
          node.leases.set(m.requestId, performance.now());
          const pages = Math.ceil((m.promptTokens + m.maxTokens) / TEST_PAGE_SIZE);
          f.freePages = Math.max(0, f.freePages - pages);
          msg.respond(encodeMessage(reserveReplyMessage({ requestId: m.requestId, ok: true, pages, freePages: f.freePages, leaseMs: opts.leaseMs ?? 10_000 })));
        } else {
          msg.respond(encodeMessage(reserveReplyMessage({ requestId: m.requestId, ok: false, reason: decision, pages: 0, freePages: f.freePages, leaseMs: 0 })));
        }
      },
    });
    node.nc.subscribe(subjects.control(opts.nodeId), {
      callback: (_err, msg) => {
        const m = decodeMessage(msg.data, SUBJECT_TYPES.control);
        if (m.type === 'renew') {
          node.renewals.push(...m.requestIds);
          for (const id of m.requestIds) if (node.leases.has(id) && node.leaseAlive(id)) node.leases.set(id, performance.now());
        }
        if (m.type === 'replay') {
          node.replays.push({ requestId: m.requestId, fromSeq: m.fromSeq });
          for (const bytes of (node.sent.get(m.requestId) ?? []).slice(m.fromSeq)) node.nc.publish(opts.subjects.tokens(m.requestId), bytes);
        }
        if (m.type !== 'cancel') return;
        node.cancels.push({ message: m, at: performance.now() });
        // as a real node: a cancel sent as a request is acknowledged (unless the test wants it ignored)
        if (msg.reply && !node.ignoreCancels) msg.respond(encodeMessage(cancelAckMessage({ requestId: m.requestId, ended: true })));
      },
    });
    node.nc.subscribe(subjects.ping(opts.nodeId), {
      callback: (_err, msg) => {
        const m = decodeMessage(msg.data, SUBJECT_TYPES.ping);
        if (!node.ignorePings) msg.respond(encodeMessage(pongMessage({ nodeId: opts.nodeId, nonce: m.nonce })));
      },
    });
    await node.nc.flush();
    node.resume();
    return node;
  }

  /** Whether the grant's lease (leaseMs from its grant or latest renewal) still holds, as a real node judges it. */
  leaseAlive(requestId: string): boolean {
    const at = this.leases.get(requestId);
    return at !== undefined && performance.now() - at < (this.opts.leaseMs ?? 10_000);
  }

  /** Publishes one heartbeat now with the current figures. */
  beat(): void {
    const f = this.figures;
    this.nc.publish(
      this.opts.subjects.heartbeat,
      encodeMessage(heartbeatMessage({
        nodeId: this.nodeId, fingerprint: this.opts.fingerprint, layoutKey: TEST_LAYOUT_KEY, kvDtype: 'fp8_e4m3', pageSize: TEST_PAGE_SIZE,
        ...f, seq: this.seq++, sentAt: Date.now(),
      })),
    );
  }

  /** Stops heartbeats (the node goes silent but keeps answering). */
  pause(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  resume(): void {
    this.beat();
    this.timer ??= setInterval(() => this.beat(), this.opts.heartbeatMs ?? 100);
  }

  /** As after a restart: heartbeats start again from seq 0. */
  restart(): void {
    this.seq = 0;
    this.beat();
  }

  /** Publishes one tokens message (the first may carry the prefill's timing); `lose`: kept for replay, not published. */
  send(requestId: string, seq: number, tokens: readonly number[], finishReason?: FinishReason, error?: string, timing?: PrefillTiming, lose = false): void {
    const final = finishReason === undefined ? {} : { finishReason, usage: { promptTokens: 1, completionTokens: tokens.length }, error };
    const bytes = encodeMessage(tokensMessage({ requestId, seq, tokens, ...final, ...(timing ? { timing } : {}) }));
    const sent = this.sent.get(requestId) ?? [];
    sent[seq] = bytes;
    this.sent.set(requestId, sent);
    if (!lose) this.nc.publish(this.opts.subjects.tokens(requestId), bytes);
  }

  /** Generates `ids` in messages of `perMessage` tokens, the last one with `finishReason`. */
  async generate(requestId: string, ids: readonly number[], finishReason: 'stop' | 'length', perMessage = 3, delayMs = 0): Promise<void> {
    const n = Math.max(1, Math.ceil(ids.length / perMessage));
    for (let i = 0; i < n; i++) {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      this.send(requestId, i, ids.slice(i * perMessage, (i + 1) * perMessage), i === n - 1 ? finishReason : undefined);
    }
    await this.nc.flush();
  }

  async stop(): Promise<void> {
    this.pause();
    await this.nc.close();
  }
}

/** What a real node does: grant while the pages are there. */
function byPages(m: Reserve, node: ScriptedDecodeNode): 'grant' | ReserveRefusal {
  const f = node.figures;
  const tokens = m.promptTokens + m.maxTokens;
  if (tokens > Math.min(f.maxContext, f.totalPages * TEST_PAGE_SIZE)) return 'too-large';
  return Math.ceil(tokens / TEST_PAGE_SIZE) <= f.freePages ? 'grant' : 'no-pages';
}
