// Every NATS subject latentwire uses, built here and nowhere else, and the message types each carries
// (pass SUBJECT_TYPES.<x> to decodeMessage so a type sent to the wrong subject is refused):
//   <p>.heartbeat                  heartbeat                      decode nodes → gateway (and anyone)
//   <p>.decode.<nodeId>.reserve    reserve → reply reserve-reply  gateway → decode node
//   <p>.decode.<nodeId>.kv         kv-chunk → reply kv-ack        prefill node → decode node
//   <p>.decode.<nodeId>.control    prefill-done → prefill-done-ack, prefill-failed, cancel
//   <p>.tokens.<requestId>         tokens                         decode node → gateway
//   <p>.prefill.cancel             cancel                         gateway → every prefill node
//   <p>.decode.<nodeId>.ping       ping → reply pong              gateway → decode node (liveness probe)
//   <p>.gateway.heartbeat          gateway-heartbeat              gateways → decode nodes (presence)
//   <p>.prefill.heartbeat          prefill-heartbeat              prefill workers → gateways (presence, jobs)
// The control subject also carries renew and replay (gateway, no reply) and answers a cancel sent as a request with a
// cancel-ack.
// Ids may contain dots (they then span several subject tokens), so subscribe to these exact subjects, not
// to wildcards under them: `<p>.decode.a.>` would also match node `a.b`'s subjects.
import { WireUsageError } from './errors.js';
import { ID_MAX_LENGTH, ID_PATTERN } from './fields.js';
import type { MessageType } from './message-types.js';

export const DEFAULT_SUBJECT_PREFIX = 'lw';

export const SUBJECT_TYPES = {
  heartbeat: ['heartbeat'],
  reserve: ['reserve'],
  reserveReply: ['reserve-reply'],
  kv: ['kv-chunk'],
  kvReply: ['kv-ack'],
  control: ['prefill-done', 'prefill-failed', 'cancel', 'renew', 'replay'],
  controlReply: ['prefill-done-ack'],
  cancelReply: ['cancel-ack'],
  ping: ['ping'],
  pingReply: ['pong'],
  gatewayHeartbeat: ['gateway-heartbeat'],
  prefillHeartbeat: ['prefill-heartbeat'],
  tokens: ['tokens'],
  prefillCancel: ['cancel'],
} as const satisfies Record<string, readonly MessageType[]>;

export interface WireSubjects {
  readonly prefix: string;
  readonly heartbeat: string;
  readonly prefillCancel: string;
  readonly gatewayHeartbeat: string;
  readonly prefillHeartbeat: string;
  reserve(nodeId: string): string;
  kv(nodeId: string): string;
  control(nodeId: string): string;
  ping(nodeId: string): string;
  tokens(requestId: string): string;
}

/** Dot-separated tokens of [A-Za-z0-9_-], e.g. 'lw' or 'test.3f9a' (one prefix per test isolates it). */
const PREFIX = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

export function wireSubjects(prefix: string = DEFAULT_SUBJECT_PREFIX): WireSubjects {
  if (prefix.length > 64 || !PREFIX.test(prefix)) {
    throw new WireUsageError(`subject prefix ${JSON.stringify(prefix)}: expected dot-separated [A-Za-z0-9_-] tokens, at most 64 chars`);
  }
  const node = (nodeId: string, what: string) => `${prefix}.decode.${subjectId('nodeId', nodeId)}.${what}`;
  return Object.freeze({
    prefix,
    heartbeat: `${prefix}.heartbeat`,
    prefillCancel: `${prefix}.prefill.cancel`,
    gatewayHeartbeat: `${prefix}.gateway.heartbeat`,
    prefillHeartbeat: `${prefix}.prefill.heartbeat`,
    reserve: (nodeId: string) => node(nodeId, 'reserve'),
    kv: (nodeId: string) => node(nodeId, 'kv'),
    control: (nodeId: string) => node(nodeId, 'control'),
    ping: (nodeId: string) => node(nodeId, 'ping'),
    tokens: (requestId: string) => `${prefix}.tokens.${subjectId('requestId', requestId)}`,
  });
}

/** An id as the wire schemas accept it (no wildcards, whitespace or empty tokens), else a named error. */
function subjectId(name: string, id: string): string {
  if (id.length > ID_MAX_LENGTH || !ID_PATTERN.test(id)) {
    throw new WireUsageError(`${name} ${JSON.stringify(id.slice(0, 140))} can't be a subject token: expected 1-${ID_MAX_LENGTH} of [A-Za-z0-9_.:-], no empty dot-separated part`);
  }
  return id;
}
