// The prefill side of the KV handoff: a layer's f32 latent rows [tokens, r + rope] quantized on the GPU into
// the decode node's page layout (so FP8 crosses the network at a quarter of f32's bytes) and read back as
// contiguous pages, page i holding tokens [i·pageSize, (i+1)·pageSize). pageRows() cuts one page's rows and
// scales out of that, exactly the bytes the decode node copies into its own page.
import type { Gpu } from '../runtime/runtime.js';
import { kvQuantize } from '../kernels/kv-quantize/kv-quantize.js';
import { pagePieces, pagesFor, type LatentKvLayout } from '@latentwire/protocol';

export class LatentPageStager {
  private staging: GPUBuffer | null = null;
  private pageIds: GPUBuffer | null = null;
  private capacityPages = 0;

  constructor(private readonly gpu: Gpu, readonly layout: LatentKvLayout) {}

  /** Quantizes `tokens` rows of `latent` into pages and returns their bytes (pagesFor(tokens) pages). */
  async pages(latent: GPUBuffer, tokens: number): Promise<Uint8Array> {
    const n = pagesFor(this.layout, tokens);
    this.reserve(n);
    await this.gpu.run([kvQuantize({ layout: this.layout, src: latent, rows: tokens, pageIds: this.pageIds!, cache: this.staging! })]);
    return new Uint8Array(await this.gpu.read(this.staging!, 0, n * this.layout.pageBytes));
  }

  private reserve(pages: number): void {
    if (pages <= this.capacityPages) return;
    this.release();
    this.staging = this.gpu.buffer('kv.staging', pages * this.layout.pageBytes);
    this.pageIds = this.gpu.upload('kv.staging_ids', Uint32Array.from({ length: pages }, (_, i) => i));
    this.capacityPages = pages;
  }

  release(): void {
    this.gpu.destroy(this.staging, this.pageIds);
    this.staging = this.pageIds = null;
    this.capacityPages = 0;
  }
}

/** Page `pageIndex` of contiguous page bytes: its filled rows and their scales (empty without scales). */
export function pageRows(layout: LatentKvLayout, bytes: Uint8Array, tokens: number, pageIndex: number): {
  readonly tokenStart: number; readonly tokenCount: number; readonly rows: Uint8Array; readonly scales: Uint8Array;
} {
  const tokenStart = pageIndex * layout.pageSize;
  const tokenCount = Math.min(layout.pageSize, tokens - tokenStart);
  if (!Number.isInteger(pageIndex) || pageIndex < 0 || tokenCount < 1) throw new RangeError(`pageRows: page ${pageIndex} holds none of ${tokens} tokens`);
  const [piece] = pagePieces(layout, tokenStart, tokenCount); // where the layout puts them in the page
  const base = pageIndex * layout.pageBytes;
  const rows = base + piece!.pageRowsOffset, scales = base + piece!.pageScalesOffset;
  return { tokenStart, tokenCount, rows: bytes.subarray(rows, rows + piece!.rowsBytes), scales: bytes.subarray(scales, scales + piece!.scalesBytes) };
}
