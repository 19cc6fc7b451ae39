// The decode node's paged latent KV cache: per layer one pool of `numPages` pages in the latent layout
// (shared/protocol/src/kv/latent-layout.ts), split over several GPU buffers when it exceeds one storage binding.
// Page ids are global and shared by all layers (a sequence's page table is the same in every layer); the
// scheduler's PageAllocator hands them out, this class only holds the bytes.
import type { Gpu } from '@latentwire/gpu';
import { latentKvLayout, latentPagePool, pageLocation, type KvDtype, type LatentKvLayout, type LatentPagePool } from '@latentwire/protocol';
import { MAX_POOL_BINDINGS } from '../kernels/grouped-decode-attention/index.js';

export interface LatentKvCacheSpec {
  readonly layers: number;
  readonly kvLoraRank: number;
  readonly ropeDim: number;
  readonly pageSize: number;
  readonly dtype: KvDtype;
  readonly numPages: number;
  /** Largest buffer one binding may be (default: the device's maxStorageBufferBindingSize and maxBufferSize). */
  readonly maxBindingBytes?: number;
}

/**
 * A layer's pool of `numPages` pages split into buffers of at most `maxBindingBytes` (the layout's pool
 * arithmetic). Throws a RangeError when the pool needs more than MAX_POOL_BINDINGS buffers, the most the
 * decode attention kernel binds (the decode node checks this against the adapter at start).
 */
export function kvPool(layout: LatentKvLayout, numPages: number, maxBindingBytes: number): LatentPagePool {
  const pool = latentPagePool(layout, numPages, maxBindingBytes);
  if (pool.bufferPages.length > MAX_POOL_BINDINGS) {
    throw new RangeError(`KV cache: ${numPages} pages of ${layout.pageBytes} bytes need ${pool.bufferPages.length} buffers a layer; ` +
      `at most ${MAX_POOL_BINDINGS} of ${maxBindingBytes} bytes are bound`);
  }
  return pool;
}

export class LatentKvCache {
  readonly layout: LatentKvLayout;
  /** How the pool is split over buffers and where each page lives (the layout's pool arithmetic). */
  readonly pool: LatentPagePool;
  /** pools[layer][k]: the k-th buffer of a layer's pool. */
  readonly pools: readonly (readonly GPUBuffer[])[];

  constructor(private readonly gpu: Gpu, spec: LatentKvCacheSpec) {
    if (!Number.isInteger(spec.numPages) || spec.numPages < 1) throw new RangeError(`KV cache: numPages ${spec.numPages} must be ≥ 1`);
    this.layout = latentKvLayout({ kvLoraRank: spec.kvLoraRank, ropeDim: spec.ropeDim, pageSize: spec.pageSize, dtype: spec.dtype });
    this.pool = kvPool(this.layout, spec.numPages, spec.maxBindingBytes ?? Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize));
    const counts = this.pool.bufferPages;
    this.pools = Array.from({ length: spec.layers }, (_, l) =>
      counts.map((pages, k) => gpu.buffer(`kv.${l}.${k}`, pages * this.layout.pageBytes)));
  }

  get numPages(): number {
    return this.pool.numPages;
  }

  get pagesPerBuffer(): number {
    return this.pool.pagesPerBuffer;
  }

  get bytes(): number {
    return this.pools.reduce((s, p) => s + p.reduce((t, b) => t + b.size, 0), 0);
  }

  /** Where page `pageId`'s bytes start: its buffer in the layer's pool and the byte offset within it. */
  locate(layer: number, pageId: number): { buffer: GPUBuffer; byteOffset: number } {
    const pool = this.pools[layer];
    if (!pool) throw new RangeError(`KV cache: layer ${layer} outside [0, ${this.pools.length})`);
    const at = pageLocation(this.pool, pageId);
    return { buffer: pool[at.buffer]!, byteOffset: at.byteOffset };
  }

  /**
   * Copies received rows (and scales) of tokens [slot, slot + rows) of one page, already in this cache's
   * layout, into the page: the disaggregated path, where the prefill node quantized them.
   */
  writeRows(layer: number, pageId: number, slot: number, rowBytes: Uint8Array, scaleBytes: Uint8Array): void {
    const l = this.layout;
    const tokens = rowBytes.byteLength / l.rowBytes;
    if (!Number.isInteger(tokens) || tokens < 1 || slot < 0 || slot + tokens > l.pageSize) {
      throw new RangeError(`KV cache: ${rowBytes.byteLength} row bytes at slot ${slot} do not fit a page of ${l.pageSize} × ${l.rowBytes}`);
    }
    if (scaleBytes.byteLength !== tokens * l.scaleBytes) throw new RangeError(`KV cache: ${scaleBytes.byteLength} scale bytes for ${tokens} tokens`);
    const { buffer, byteOffset } = this.locate(layer, pageId);
    this.gpu.write(buffer, rowBytes, byteOffset + slot * l.rowBytes);
    if (scaleBytes.byteLength > 0) this.gpu.write(buffer, scaleBytes, byteOffset + l.scalesOffset + slot * l.scaleBytes);
  }

  /**
   * Copies whole pages (every layer) on the GPU, in queue order: a choice's copy-on-write of its prompt's
   * partial last page, before any step of that choice writes into it.
   */
  copyPages(copies: readonly { readonly from: number; readonly to: number }[]): void {
    if (copies.length === 0) return;
    const bytes = this.layout.pageBytes;
    if (bytes % 4 !== 0) throw new RangeError(`KV cache: page of ${bytes} bytes cannot be copied (not a multiple of 4)`);
    // WebGPU copies never stay within one buffer, and pages share buffers: every copy goes through a page of
    // scratch (copies in one encoder run in order)
    const scratch = this.gpu.buffer('kv.copy-pages.scratch', bytes);
    const encoder = this.gpu.device.createCommandEncoder({ label: 'kv.copy-pages' });
    for (let layer = 0; layer < this.pools.length; layer++) {
      for (const { from, to } of copies) {
        const src = this.locate(layer, from);
        const dst = this.locate(layer, to);
        encoder.copyBufferToBuffer(src.buffer, src.byteOffset, scratch, 0, bytes);
        encoder.copyBufferToBuffer(scratch, 0, dst.buffer, dst.byteOffset, bytes);
      }
    }
    this.gpu.device.queue.submit([encoder.finish()]);
    this.gpu.destroy(scratch); // freed once the submitted copies are done
  }

  /** One page's bytes (tests, debugging). */
  async readPage(layer: number, pageId: number): Promise<Uint8Array> {
    const { buffer, byteOffset } = this.locate(layer, pageId);
    return new Uint8Array(await this.gpu.read(buffer, byteOffset, this.layout.pageBytes));
  }

  release(): void {
    for (const pool of this.pools) this.gpu.destroy(...pool);
  }
}
