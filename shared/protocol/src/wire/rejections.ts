// How every service counts and logs a message it refused: one counter, one log line, the same labels. The
// `type` label is a known message type or 'unknown' (never a string from the wire: labels must stay few).
import type { Logger } from 'pino';
import { Counter, register as defaultRegistry, type Registry } from 'prom-client';
import { decodeMessage } from './codec.js';
import { WireError, type WireRejectReason } from './errors.js';
import type { MessageOf, MessageType } from './message-types.js';

export const WIRE_REJECTED_METRIC = 'latentwire_wire_rejected_total';

export interface WireRejectionsOptions {
  readonly logger: Logger;
  /** Where the counter is registered (default: prom-client's global registry). */
  readonly registry?: Registry;
}

export class WireRejections {
  private readonly counter: Counter<'type' | 'reason'>;
  private readonly logger: Logger;
  // This instance's own tally, readable synchronously (the prom-client counter may be shared).
  private readonly counts = new Map<WireRejectReason, number>();

  constructor(options: WireRejectionsOptions) {
    const registry = options.registry ?? defaultRegistry;
    this.logger = options.logger;
    // Two instances on one registry (two subscriptions in a process) share the counter.
    const existing = registry.getSingleMetric(WIRE_REJECTED_METRIC);
    this.counter = existing instanceof Counter
      ? (existing as Counter<'type' | 'reason'>)
      : new Counter({
          name: WIRE_REJECTED_METRIC,
          help: 'Wire messages refused on receipt, by message type and reason',
          labelNames: ['type', 'reason'] as const,
          registers: [registry],
        });
  }

  /** Counts and logs (one warn line) a message refused on `subject`. */
  reject(err: WireError, subject: string): void {
    const type = err.messageType ?? 'unknown';
    this.counter.inc({ type, reason: err.reason });
    this.counts.set(err.reason, this.count(err.reason) + 1);
    this.logger.warn({ subject, type, reason: err.reason, detail: err.message }, 'wire message rejected');
  }

  /**
   * decodeMessage, counting and logging a refusal instead of throwing: undefined means "drop it".
   * Errors other than WireError (bugs) are rethrown.
   */
  decode<T extends MessageType>(bytes: Uint8Array, subject: string, expectedTypes: readonly T[]): MessageOf<T> | undefined {
    try {
      return decodeMessage(bytes, expectedTypes);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.reject(err, subject);
      return undefined;
    }
  }

  /** Messages this instance refused for `reason`. */
  count(reason: WireRejectReason): number {
    return this.counts.get(reason) ?? 0;
  }
}
