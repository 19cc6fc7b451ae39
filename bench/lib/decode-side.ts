// The main thread's handle on the transfer bench's decode side (lib/decode-side-worker.ts): commands as
// promises, and the shared message counter the raw publish ceiling reads to keep its window.
import { Worker } from 'node:worker_threads';
import type { LatentKvLayout } from '@latentwire/protocol';

export interface KvStats {
  readonly chunks: number;
  readonly bytes: number;
  readonly refused: number;
  readonly invalid: number;
}

export class DecodeSide {
  /** [0]: messages the worker's `count` subscription has received (reset by each count()). */
  readonly counter = new Int32Array(new SharedArrayBuffer(4));
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  private constructor() {
    this.worker = new Worker(new URL('./decode-side-worker.js', import.meta.url), { workerData: this.counter.buffer });
    this.worker.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id)!;
      this.waiting.delete(m.id);
      if (m.error !== undefined) w.reject(new Error(`decode side: ${m.error}`));
      else w.resolve(m.result);
    });
    this.worker.on('error', (err) => {
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  static async start(natsUrl: string): Promise<DecodeSide> {
    const side = new DecodeSide();
    await side.call({ op: 'connect', url: natsUrl });
    return side;
  }

  count(subject: string): Promise<unknown> {
    return this.call({ op: 'count', subject });
  }

  echo(subject: string, reply: Uint8Array): Promise<unknown> {
    return this.call({ op: 'echo', subject, reply });
  }

  kv(subject: string, layout: LatentKvLayout, layoutKey: string): Promise<unknown> {
    const { kvLoraRank, ropeDim, pageSize, dtype } = layout;
    return this.call({ op: 'kv', subject, layout: { kvLoraRank, ropeDim, pageSize, dtype }, layoutKey });
  }

  kvStats(): Promise<KvStats> {
    return this.call({ op: 'kvStats' }) as Promise<KvStats>;
  }

  unsubscribe(subject: string): Promise<unknown> {
    return this.call({ op: 'unsubscribe', subject });
  }

  async close(): Promise<void> {
    await this.call({ op: 'close' });
    await this.worker.terminate();
  }

  /** Resolves once the counter differs from `seen` (at once if it already does). */
  async counterChange(seen: number): Promise<void> {
    const r = Atomics.waitAsync(this.counter, 0, seen);
    if (r.async) await r.value;
  }

  private call(command: object): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, command });
    });
  }
}
