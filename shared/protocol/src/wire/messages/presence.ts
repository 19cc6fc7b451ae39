// Liveness and lifetime messages (reliability):
//   renew: gateway → a decode node's control subject, every third of a lease: the requests it still waits
//     on there (granted, prefill not yet done) keep their reservations for another lease, so a job that
//     waits long in the prefill queue does not lose its pages. An id the node does not hold is ignored.
//   replay: gateway → a decode node's control subject: publish again the request's tokens messages from
//     `fromSeq` on (a gap in seq, or a NATS reconnect during which messages may have been lost); the node
//     keeps a request's messages while it runs and for a while after. Duplicates are dropped by seq.
//   cancel-ack: the decode node's reply to a cancel sent as a request (the gateway retries until acked).
//   ping → pong: a direct probe of one decode node (its ping subject), before the gateway declares it lost.
//   gateway-heartbeat: each gateway → every decode node, so a node stops the sequences of a gateway gone silent.
//   prefill-heartbeat: each prefill worker → the gateways, with the requests whose jobs it runs now: a worker
//     gone silent (crashed) has its jobs re-queued at once instead of after BullMQ's 30 s lock.
import { z } from 'zod';
import { msEpoch, positiveU32, u32, wireId } from '../fields.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

/** Request ids in one renew message (a gateway with more sends several). */
export const MAX_RENEW_IDS = 512;

export interface Renew extends Envelope<'renew'> {
  readonly requestIds: readonly string[];
}

export interface Replay extends Envelope<'replay'> {
  readonly requestId: string;
  readonly fromSeq: number;
}

export interface CancelAck extends Envelope<'cancel-ack'> {
  readonly requestId: string;
  /** The node still held the request (reservation or sequence) and ended it now. */
  readonly ended: boolean;
}

export interface Ping extends Envelope<'ping'> {
  /** Echoed in the pong. */
  readonly nonce: number;
}

export interface Pong extends Envelope<'pong'> {
  readonly nodeId: string;
  readonly nonce: number;
  /** The node is draining (shutting down): it takes no new requests. */
  readonly draining?: boolean;
}

export interface GatewayHeartbeat extends Envelope<'gateway-heartbeat'> {
  readonly gatewayId: string;
  /** Per-gateway counter (wraps at 2^32). */
  readonly seq: number;
  /** How often this gateway beats (ms): a node waits several periods before it gives up on it. */
  readonly intervalMs: number;
  readonly sentAt: number;
}

/** Jobs named in one prefill-heartbeat (a worker runs PREFILL_CONCURRENCY at once, at most 64). */
export const MAX_HEARTBEAT_JOBS = 256;

export interface PrefillHeartbeat extends Envelope<'prefill-heartbeat'> {
  readonly workerId: string;
  readonly seq: number;
  readonly intervalMs: number;
  readonly sentAt: number;
  /** Request ids of the jobs it runs now. */
  readonly jobs: readonly string[];
  /**
   * The longest prompt it takes (its device's compileAll limit, or the operator's PREFILL_MAX_PROMPT_TOKENS), when shorter than the model's context: a
   * gateway refuses a longer prompt at once (400) instead of queueing a job every worker would refuse.
   */
  readonly maxPromptTokens?: number;
}

export const prefillHeartbeatMessage = (f: Fields<PrefillHeartbeat>): PrefillHeartbeat => ({ v: WIRE_VERSION, type: 'prefill-heartbeat', ...f });

export const prefillHeartbeatSpec: MessageSpec<PrefillHeartbeat> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION), type: z.literal('prefill-heartbeat'), workerId: wireId, seq: u32, intervalMs: positiveU32, sentAt: msEpoch,
    jobs: z.array(wireId).max(MAX_HEARTBEAT_JOBS), maxPromptTokens: positiveU32.optional(),
  }),
  describe: (m) => ({ type: m.type, workerId: m.workerId, seq: m.seq, jobs: m.jobs.length }),
};

export const renewMessage = (f: Fields<Renew>): Renew => ({ v: WIRE_VERSION, type: 'renew', ...f });
export const replayMessage = (f: Fields<Replay>): Replay => ({ v: WIRE_VERSION, type: 'replay', ...f });
export const cancelAckMessage = (f: Fields<CancelAck>): CancelAck => ({ v: WIRE_VERSION, type: 'cancel-ack', ...f });
export const pingMessage = (f: Fields<Ping>): Ping => ({ v: WIRE_VERSION, type: 'ping', ...f });
export const pongMessage = (f: Fields<Pong>): Pong => compact({ v: WIRE_VERSION, type: 'pong', ...f });
export const gatewayHeartbeatMessage = (f: Fields<GatewayHeartbeat>): GatewayHeartbeat => ({ v: WIRE_VERSION, type: 'gateway-heartbeat', ...f });

export const renewSpec: MessageSpec<Renew> = {
  schema: z.object({ v: z.literal(WIRE_VERSION), type: z.literal('renew'), requestIds: z.array(wireId).min(1).max(MAX_RENEW_IDS) }),
  describe: (m) => ({ type: m.type, requests: m.requestIds.length }),
};

export const replaySpec: MessageSpec<Replay> = {
  schema: z.object({ v: z.literal(WIRE_VERSION), type: z.literal('replay'), requestId: wireId, fromSeq: u32 }),
  describe: (m) => ({ type: m.type, requestId: m.requestId, fromSeq: m.fromSeq }),
};

export const cancelAckSpec: MessageSpec<CancelAck> = {
  schema: z.object({ v: z.literal(WIRE_VERSION), type: z.literal('cancel-ack'), requestId: wireId, ended: z.boolean() }),
  describe: (m) => ({ type: m.type, requestId: m.requestId, ended: m.ended }),
};

export const pingSpec: MessageSpec<Ping> = {
  schema: z.object({ v: z.literal(WIRE_VERSION), type: z.literal('ping'), nonce: u32 }),
  describe: (m) => ({ type: m.type, nonce: m.nonce }),
};

export const pongSpec: MessageSpec<Pong> = {
  schema: z.object({ v: z.literal(WIRE_VERSION), type: z.literal('pong'), nodeId: wireId, nonce: u32, draining: z.boolean().optional() }),
  describe: (m) => ({ type: m.type, nodeId: m.nodeId, nonce: m.nonce, draining: m.draining }),
};

export const gatewayHeartbeatSpec: MessageSpec<GatewayHeartbeat> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION), type: z.literal('gateway-heartbeat'), gatewayId: wireId, seq: u32, intervalMs: positiveU32, sentAt: msEpoch,
  }),
  describe: (m) => ({ type: m.type, gatewayId: m.gatewayId, seq: m.seq }),
};
