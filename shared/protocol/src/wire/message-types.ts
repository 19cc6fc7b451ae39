// The message types of wire version 2, as one `as const` list and one union; each type's schema, checks and
// log form live in messages/<name>.ts. Adding a type: a module there, a line in SPECS, a subject in
// subjects.ts. Changing what a field means: bump WIRE_VERSION.
import { cancelSpec, type Cancel } from './messages/cancel.js';
import { heartbeatSpec, type Heartbeat } from './messages/heartbeat.js';
import { kvAckSpec, kvChunkSpec, type KvAck, type KvChunk } from './messages/kv-chunk.js';
import {
  prefillDoneAckSpec, prefillDoneSpec, prefillFailedSpec, type PrefillDone, type PrefillDoneAck, type PrefillFailed,
} from './messages/prefill.js';
import { reserveReplySpec, reserveSpec, type Reserve, type ReserveReply } from './messages/reserve.js';
import {
  cancelAckSpec, gatewayHeartbeatSpec, pingSpec, pongSpec, prefillHeartbeatSpec, renewSpec, replaySpec,
  type CancelAck, type GatewayHeartbeat, type Ping, type Pong, type PrefillHeartbeat, type Renew, type Replay,
} from './messages/presence.js';
import type { MessageDescription, MessageSpec } from './messages/spec.js';
import { tokensSpec, type Tokens } from './messages/tokens.js';

export const MESSAGE_TYPES = [
  'heartbeat',
  'reserve',
  'reserve-reply',
  'kv-chunk',
  'kv-ack',
  'prefill-done',
  'prefill-done-ack',
  'prefill-failed',
  'cancel',
  'tokens',
  'renew',
  'cancel-ack',
  'ping',
  'pong',
  'gateway-heartbeat',
  'prefill-heartbeat',
  'replay',
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export type WireMessage =
  | Heartbeat
  | Reserve
  | ReserveReply
  | KvChunk
  | KvAck
  | PrefillDone
  | PrefillDoneAck
  | PrefillFailed
  | Cancel
  | Tokens
  | Renew
  | CancelAck
  | Ping
  | Pong
  | GatewayHeartbeat
  | PrefillHeartbeat
  | Replay;

/** The message of one type (or of a union of types). */
export type MessageOf<T extends MessageType> = Extract<WireMessage, { type: T }>;

export const SPECS: { readonly [T in MessageType]: MessageSpec<MessageOf<T>> } = {
  heartbeat: heartbeatSpec,
  reserve: reserveSpec,
  'reserve-reply': reserveReplySpec,
  'kv-chunk': kvChunkSpec,
  'kv-ack': kvAckSpec,
  'prefill-done': prefillDoneSpec,
  'prefill-done-ack': prefillDoneAckSpec,
  'prefill-failed': prefillFailedSpec,
  cancel: cancelSpec,
  tokens: tokensSpec,
  renew: renewSpec,
  'cancel-ack': cancelAckSpec,
  ping: pingSpec,
  pong: pongSpec,
  'gateway-heartbeat': gatewayHeartbeatSpec,
  'prefill-heartbeat': prefillHeartbeatSpec,
  replay: replaySpec,
};

export function isMessageType(t: unknown): t is MessageType {
  return typeof t === 'string' && Object.hasOwn(SPECS, t);
}

export function specOf<T extends MessageType>(type: T): MessageSpec<MessageOf<T>> {
  return SPECS[type] as unknown as MessageSpec<MessageOf<T>>;
}

/** The redacted log form of a message: ids, counts and sizes; no payload bytes, token ids or prompt text. */
export function describeMessage(m: WireMessage): MessageDescription {
  return specOf(m.type).describe(m as never);
}
