// Buffers a forward pass takes and gives back, kept for the next pass instead of freed. A prefill of 4096
// tokens at DeepSeek-V2-Lite shapes allocates ~1 GB of activations, latent rows and scratch: allocating,
// clearing and freeing them cost 22 ms on the H200, and since every buffer was new, none of the pass's ~600
// bind groups could come from the runtime's cache. Sizes are rounded up to a quarter octave (at most 25% more
// memory), so prompts of similar lengths share buffers; free buffers beyond `maxFreeBytes` are destroyed.
import type { Gpu } from './runtime.js';

/** What scratch allocators need: `Gpu` itself, or a pool in front of it. */
export type BufferSource = Pick<Gpu, 'buffer' | 'destroy'>;

/** `bytes` rounded up to 2^k · (1 + j/4): the size class a pooled buffer is kept under. */
export function pooledSize(bytes: number): number {
  if (bytes <= 256) return 256;
  const step = 2 ** (Math.floor(Math.log2(bytes)) - 2);
  return Math.ceil(bytes / step) * step;
}

export class BufferPool implements BufferSource {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly taken = new Set<GPUBuffer>();
  private freeBytes = 0;

  constructor(private readonly gpu: Gpu, private readonly maxFreeBytes: number) {}

  /** A buffer of at least `byteSize` bytes (storage usage), reused when one of its size class is free. */
  buffer(label: string, byteSize: number): GPUBuffer {
    // a buffer is bound whole: where its size class would outgrow a binding that its bytes fit, the largest
    // bindable size (a 16-byte multiple, as Gpu.buffer rounds) instead
    const maxBinding = Math.floor(this.gpu.limits.maxStorageBufferBindingSize / 16) * 16;
    const size = byteSize <= maxBinding ? Math.min(pooledSize(byteSize), maxBinding) : pooledSize(byteSize);
    const list = this.free.get(size);
    let b = list?.pop();
    if (b) {
      this.freeBytes -= size;
      if (list!.length === 0) this.free.delete(size);
    } else {
      b = this.gpu.buffer(label, size);
    }
    this.taken.add(b);
    return b;
  }

  /** Gives buffers back for reuse; a buffer this pool did not hand out is destroyed, as Gpu.destroy would. */
  destroy(...buffers: (GPUBuffer | null | undefined)[]): void {
    for (const b of buffers) {
      if (!b) continue;
      if (!this.taken.delete(b)) {
        this.gpu.destroy(b);
        continue;
      }
      if (this.freeBytes + b.size > this.maxFreeBytes) {
        this.gpu.destroy(b);
        continue;
      }
      const list = this.free.get(b.size) ?? [];
      list.push(b);
      this.free.set(b.size, list);
      this.freeBytes += b.size;
    }
  }

  /** Bytes held free for reuse. */
  get idleBytes(): number {
    return this.freeBytes;
  }

  /** Frees every idle buffer (taken ones are freed when given back after this). */
  dispose(): void {
    for (const list of this.free.values()) this.gpu.destroy(...list);
    this.free.clear();
    this.freeBytes = 0;
  }
}
