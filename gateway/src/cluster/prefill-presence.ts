// The prefill workers' presence, from their prefill-heartbeats: who is alive and which requests' jobs each
// runs. A worker silent for PREFILL_SILENCE_MS has crashed or been cut off: `onLost` hears the request ids
// it held, so the gateway re-queues them at once instead of waiting out BullMQ's 30 s lock. As in the decode
// registry, silence is counted only while this gateway could hear (NATS link up, event loop responsive).
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { SUBJECT_TYPES, type PrefillHeartbeat, type WireRejections, type WireSubjects } from '@latentwire/protocol';
import type { Logger } from 'pino';

interface Worker {
  lastSeen: number;
  jobs: ReadonlySet<string>;
  maxPromptTokens: number | undefined;
}

export interface PrefillPresenceOptions {
  readonly nc: NatsConnection;
  readonly subjects: WireSubjects;
  readonly rejections: WireRejections;
  readonly silenceMs: number;
  /** Whether this gateway's NATS link is up (DecodeRegistry.connected). */
  readonly connected: () => boolean;
  readonly logger: Logger;
  readonly onLost: (workerId: string, requestIds: readonly string[]) => void;
}

export class PrefillPresence {
  private readonly workers = new Map<string, Worker>();
  private readonly sub: Subscription;
  private readonly timer: NodeJS.Timeout;
  private readonly every: number;
  private last = performance.now();

  constructor(private readonly o: PrefillPresenceOptions) {
    this.sub = o.nc.subscribe(o.subjects.prefillHeartbeat, {
      callback: (err, msg) => {
        if (err) return o.logger.error({ err }, 'prefill heartbeat subscription failed');
        const hb = o.rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.prefillHeartbeat);
        if (hb) this.onHeartbeat(hb);
      },
    });
    this.every = Math.max(10, o.silenceMs / 4);
    this.timer = setInterval(() => this.sweep(), this.every);
    this.timer.unref();
  }

  /** The worker running a request's job, if a heartbeat named it. */
  holder(requestId: string): string | undefined {
    for (const [id, w] of this.workers) if (w.jobs.has(requestId)) return id;
    return undefined;
  }

  get size(): number {
    return this.workers.size;
  }

  /**
   * The longest prompt every live worker can prefill (the least of their heartbeats' limits: any of them may take
   * the job from the queue), or undefined when none states one.
   */
  maxPromptTokens(): number | undefined {
    let least: number | undefined;
    for (const w of this.workers.values()) if (w.maxPromptTokens !== undefined) least = Math.min(least ?? Infinity, w.maxPromptTokens);
    return least;
  }

  close(): void {
    clearInterval(this.timer);
    this.sub.unsubscribe();
    this.workers.clear();
  }

  private onHeartbeat(hb: PrefillHeartbeat): void {
    if (!this.workers.has(hb.workerId)) this.o.logger.info({ workerId: hb.workerId }, 'prefill worker joined');
    this.workers.set(hb.workerId, { lastSeen: performance.now(), jobs: new Set(hb.jobs), maxPromptTokens: hb.maxPromptTokens });
  }

  private sweep(): void {
    const now = performance.now();
    const stalled = Math.max(0, now - this.last - this.every);
    this.last = now;
    if (!this.o.connected()) {
      for (const w of this.workers.values()) w.lastSeen = now; // we hear nobody while disconnected
      return;
    }
    for (const [id, w] of this.workers) {
      if (stalled > 0) w.lastSeen += stalled;
      if (now - w.lastSeen <= this.o.silenceMs) continue;
      this.workers.delete(id);
      this.o.logger.warn({ workerId: id, jobs: w.jobs.size, silenceMs: this.o.silenceMs }, 'prefill worker lost: no heartbeat');
      if (w.jobs.size > 0) this.o.onLost(id, [...w.jobs]);
    }
  }
}
