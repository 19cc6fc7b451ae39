// The wire protocol between gateway, prefill and decode nodes: versioned msgpack messages, validated on
// receipt, counted and logged the same way when refused; kv-chunk splitting to NATS's max_payload; subjects.
export * from './errors.js';
export { WIRE_VERSION, type Envelope, type Fields, type MessageDescription } from './messages/spec.js';
export { MESSAGE_TYPES, describeMessage, isMessageType, type MessageOf, type MessageType, type WireMessage } from './message-types.js';
export { heartbeatMessage, type Heartbeat } from './messages/heartbeat.js';
export {
  MAX_PROMPT_TOKEN_SET_BYTES, MAX_RESUME_TOKENS, RESERVE_REFUSALS, reserveMessage, reserveReplyMessage, type Reserve, type ReserveRefusal, type ReserveReply,
} from './messages/reserve.js';
export {
  KV_ACK_REFUSALS, MAX_KV_CHUNK_RUNS, kvAckMessage, kvChunkChecksum, kvChunkMessage, kvChunkRuns, type KvAck, type KvAckRefusal, type KvChunk, type KvRun,
} from './messages/kv-chunk.js';
export {
  PREFILL_DONE_REFUSALS, prefillDoneAckMessage, prefillDoneMessage, prefillFailedMessage,
  type PrefillDone, type PrefillDoneAck, type PrefillDoneRefusal, type PrefillFailed, type PrefillTiming,
} from './messages/prefill.js';
export {
  MAX_GRAMMAR_BYTES, MAX_LOGIT_BIAS, MAX_REPETITION_PENALTY, MAX_STOP_TOKENS, MAX_PROMPT_LOGPROB_PAIRS, MAX_WIRE_CHOICES, MAX_WIRE_TOP_LOGPROBS,
  choiceRequestId, choiceSampling, type WireGrammar, type WireLogprobs, type WireSampling,
} from './messages/sampling.js';
export {
  MAX_HEARTBEAT_JOBS, MAX_RENEW_IDS, cancelAckMessage, gatewayHeartbeatMessage, pingMessage, pongMessage, prefillHeartbeatMessage, renewMessage, replayMessage,
  type CancelAck, type GatewayHeartbeat, type Ping, type Pong, type PrefillHeartbeat, type Renew, type Replay,
} from './messages/presence.js';
export { CANCEL_REASONS, cancelMessage, type Cancel, type CancelReason } from './messages/cancel.js';
export {
  FINISH_REASONS, MAX_TOKENS_PER_MESSAGE, tokensMessage, type FinishReason, type Tokens, type Usage,
} from './messages/tokens.js';
export { decodeMessage, encodeMessage, validateMessage } from './codec.js';
export {
  KvChunkQueue, encodeKvChunk, kvChunkEnvelopeBytes, type ChunkAllocator, kvChunkMessages, kvChunkPieces, kvChunkTokens, runData, type EncodedKvChunk, type KvChunkPiece, type KvLayerPages,
} from './kv-chunking.js';
export { maxPayloadOf, type NatsServerInfoSource } from './max-payload.js';
export { WireRejections, WIRE_REJECTED_METRIC, type WireRejectionsOptions } from './rejections.js';
export { DEFAULT_SUBJECT_PREFIX, SUBJECT_TYPES, wireSubjects, type WireSubjects } from './subjects.js';
export { parseLatentLayoutKey } from './layout-key.js';
export { ID_MAX_LENGTH, ID_PATTERN } from './fields.js';
export { parsePrefillJob, prefillQueueName, MAX_PROMPT_TOKENS, type PrefillJob } from './prefill-job.js';
