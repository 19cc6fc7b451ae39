// Bytes ⇄ messages. Every message on NATS is a msgpack map `{ v, type, ...fields }` encoded by one Packr
// configured so that no state is shared between processes (no records/structures) and byte fields stay
// msgpack `bin` (moreTypes off, so a Uint8Array is not wrapped in a typed-array extension).
//
// decodeMessage checks, in order, and throws a WireError with the first failing reason:
//   malformed (not msgpack, trailing bytes, not a map) → version → unknown-type → unexpected-type (not in
//   expectedTypes, the subject's) → invalid (schema: types, ranges, lengths) → invalid/size (cross-field
//   checks) → checksum (kv-chunk).
import { Packr } from 'msgpackr';
import { WireError } from './errors.js';
import { isMessageType, specOf, type MessageOf, type MessageType, type WireMessage } from './message-types.js';
import { compact, WIRE_VERSION } from './messages/spec.js';

export const packr = new Packr({
  useRecords: false, // records need structures shared by sender and receiver
  mapsAsObjects: true, // with useRecords off msgpackr would otherwise decode maps as Map
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  int64AsType: 'number', // a 64-bit integer from another encoder is range-checked, not a BigInt surprise
});

/** Validates (schema and cross-field checks, as a receiver would) and encodes. Throws WireError if invalid. */
export function encodeMessage(m: WireMessage): Uint8Array {
  return packr.pack(validate(m.type, m, 'encode'));
}

/** The checks encodeMessage runs, without encoding: returns the message with unknown keys dropped. */
export function validateMessage<M extends WireMessage>(m: M): M {
  return validate(m.type, m, 'encode') as M;
}

/**
 * Decodes and validates received bytes, throwing WireError (see the order above). Byte fields of the result
 * (kv-chunk rows and scales) are views into `bytes`: copy them if `bytes` is reused.
 */
export function decodeMessage<T extends MessageType = MessageType>(bytes: Uint8Array, expectedTypes?: readonly T[]): MessageOf<T> {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (cause) {
    throw new WireError('malformed', `not a msgpack message (${bytes.byteLength} bytes): ${(cause as Error).message}`, undefined, { cause });
  }
  if (!isPlainObject(raw)) throw new WireError('malformed', `not a msgpack map but ${kindOf(raw)}`);
  if (raw['v'] !== WIRE_VERSION) throw new WireError('version', `wire version ${describeValue(raw['v'])}, expected ${WIRE_VERSION}`);
  const type = raw['type'];
  if (!isMessageType(type)) throw new WireError('unknown-type', `unknown message type ${describeValue(type)}`);
  if (expectedTypes && !(expectedTypes as readonly MessageType[]).includes(type)) {
    throw new WireError('unexpected-type', `${type} where ${expectedTypes.join(' | ')} was expected`, type);
  }
  return validate(type, raw, 'decode') as MessageOf<T>;
}

function validate(type: MessageType, raw: object, mode: 'encode' | 'decode'): WireMessage {
  const spec = specOf(type);
  const r = spec.schema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 4).map((i) => `${i.path.map(String).join('.') || '(message)'}: ${i.message}`);
    throw new WireError('invalid', `${type}: ${issues.join('; ')}`, type, { cause: r.error });
  }
  const problem = spec.check?.(r.data) ?? (mode === 'decode' ? spec.verify?.(r.data) : undefined);
  if (problem) throw new WireError(problem.reason, `${type}: ${problem.detail}`, type);
  return compact(r.data); // an optional field set to undefined is absent, on the wire and after decode
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function kindOf(x: unknown): string {
  if (x === null) return 'nil';
  if (Array.isArray(x)) return 'an array';
  if (x instanceof Uint8Array) return 'bin';
  return typeof x === 'object' ? (x.constructor?.name ?? 'an object') : typeof x;
}

/** A short, safe rendering of a bad version/type value for an error message. */
function describeValue(x: unknown): string {
  if (x === undefined) return '(missing)';
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x);
  return typeof x === 'number' || typeof x === 'boolean' ? String(x) : kindOf(x);
}
