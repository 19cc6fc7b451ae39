// The BullMQ side of a request: queue its prefill job once a decode node holds its pages, and take the job
// back when the request ends early. Job id = request id, so a job is found (and never queued twice) by it.
import type { PrefillJob } from '@latentwire/protocol';
import type { Queue } from 'bullmq';
import { PrefillEnqueueError } from './errors.js';

export const PREFILL_JOB_NAME = 'prefill';

export interface PrefillJobSettings {
  /** BullMQ attempts. */
  readonly attempts: number;
  /** First retry delay (ms), doubled per retry. */
  readonly backoffMs: number;
}

/** Failed jobs kept for inspection (by count and age, s); completed ones are removed at once. */
const KEEP_FAILED = { count: 1000, age: 24 * 3600 };

export class PrefillJobs {
  constructor(
    readonly queue: Queue<PrefillJob>,
    private readonly settings: PrefillJobSettings,
  ) {}

  /**
   * Queues the job, failing with PrefillEnqueueError if Redis has not taken it within `withinMs` (the
   * reservation's lease: a job queued later would find its pages gone anyway).
   */
  async enqueue(job: PrefillJob, withinMs: number): Promise<void> {
    const added = this.queue.add(PREFILL_JOB_NAME, job, {
      jobId: job.requestId,
      attempts: this.settings.attempts,
      backoff: { type: 'exponential', delay: this.settings.backoffMs },
      removeOnComplete: true,
      removeOnFail: KEEP_FAILED,
    });
    try {
      const ok = await within(added, withinMs);
      if (!ok) throw new PrefillEnqueueError(`prefill job ${job.requestId} not queued within ${withinMs} ms`);
    } catch (err) {
      if (err instanceof PrefillEnqueueError) throw err;
      throw new PrefillEnqueueError(`prefill job ${job.requestId}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Removes the job unless a prefill worker holds it (then it is locked, BullMQ leaves it, and the
   * prefill-cancel broadcast stops it). Resolves whether it was removed, within `withinMs` even if Redis
   * does not answer; never throws.
   */
  async withdraw(requestId: string, withinMs = 1000): Promise<boolean> {
    try {
      return (await within(this.queue.remove(requestId), withinMs)) === 1;
    } catch {
      return false;
    }
  }
}

/**
 * `p`'s value, or undefined if it has not settled within `ms`. A late rejection of `p` is swallowed (it
 * would otherwise be an unhandled rejection); an early one is thrown.
 */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  p.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
