// The scheduler's API shapes, apart from the class so heartbeat and engine code can import them alone.
import type { Sequence } from './sequence.js';

export interface SchedulerOptions {
  readonly numPages: number;
  readonly pageSize: number;
  /** MAX_BATCH: most sequences running (decoded together in one step). */
  readonly maxBatch: number;
  /** Bound on add()ed sequences waiting for a slot; past it add() rejects with 'queue-full'. */
  readonly maxWaiting: number;
  /** How long (ms) a reservation stays uncommitted before its pages return. */
  readonly leaseMs: number;
  /** Clock in ms, injected so tests are deterministic; default Date.now. */
  readonly now?: () => number;
  /** Sequences that may start past the oldest waiting one that doesn't fit; default 4. */
  readonly maxHeadBypass?: number;
}

export interface StepResult { readonly seqId: string; readonly token: number }

export interface ScheduledBatch {
  /** Every running sequence in admission order: the next step's batch. */
  readonly sequences: readonly Sequence[];
  /** The ones this call started (a subset); those with cachedTokens 0 need their prompt prefilled. */
  readonly admitted: readonly Sequence[];
}

export interface SchedulerStats {
  readonly totalPages: number;
  readonly freePages: number;
  readonly running: number;
  /** add()ed, no pages yet. */
  readonly waiting: number;
  /** Committed: holding pages, waiting for a batch slot. */
  readonly ready: number;
  /** Open leases, and the pages they hold. */
  readonly reserved: number;
  readonly reservedPages: number;
}
