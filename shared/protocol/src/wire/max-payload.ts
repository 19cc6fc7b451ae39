// The largest message the connected NATS server accepts (its INFO's max_payload; 1 MiB by default). It can
// change on reconnect to another server, so read it when sizing, not once at start.
import { WireUsageError } from './errors.js';

/** The part of a @nats-io NatsConnection this needs (`nc.info` is the current server's INFO). */
export interface NatsServerInfoSource {
  readonly info?: { readonly max_payload: number } | undefined;
}

export function maxPayloadOf(nc: NatsServerInfoSource): number {
  const n = nc.info?.max_payload;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new WireUsageError(`NATS max_payload is unknown (server INFO ${nc.info ? `max_payload=${String(n)}` : 'missing: not connected?'})`);
  }
  return n;
}
