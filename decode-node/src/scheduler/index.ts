export { PageAllocator } from './page-allocator.js';
export { Sequence, type FinishReason, type SequenceSpec, type SequenceStatus } from './sequence.js';
export { SchedulerRejection, type RejectionReason } from './errors.js';
export type { Reservation } from './leases.js';
export { Scheduler } from './scheduler.js';
export type { ScheduledBatch, SchedulerOptions, SchedulerStats, StepResult } from './scheduler-types.js';
