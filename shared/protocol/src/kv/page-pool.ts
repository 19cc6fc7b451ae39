// Where a page lives in a decode node's pool. A layer's pool can exceed one storage-buffer binding
// (maxStorageBufferBindingSize), so it is split into several GPU buffers of `pagesPerBuffer` whole pages each
// (the last may be shorter); page ids stay global. The pool-binding limit is computed here only: the cache,
// the kernels' plans and the benches ask this.
import { KvLayoutError, type LatentKvLayout } from './latent-layout.js';

export interface PageLocation {
  /** Which of the pool's GPU buffers holds the page. */
  readonly buffer: number;
  /** The page's index within that buffer. */
  readonly index: number;
  /** index · pageBytes: where the page starts in that buffer. */
  readonly byteOffset: number;
}

/** A pool of `numPages` pages of one layout, split over buffers that each fit one binding. */
export interface LatentPagePool {
  readonly numPages: number;
  readonly pageBytes: number;
  readonly pagesPerBuffer: number;
  /** Pages in each buffer: full buffers, then the remainder. */
  readonly bufferPages: readonly number[];
}

function checkInt(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new KvLayoutError(`${name} must be an integer ≥ ${min}, got ${value}`);
}

/** Most whole pages of the layout that fit one binding of `maxBindingBytes` (a page is never split). */
export function pagesPerBinding(layout: Pick<LatentKvLayout, 'pageBytes'>, maxBindingBytes: number): number {
  checkInt('pageBytes', layout.pageBytes, 1);
  const pages = Math.floor(maxBindingBytes / layout.pageBytes);
  if (!(pages >= 1)) throw new KvLayoutError(`a ${layout.pageBytes}-byte page does not fit a ${maxBindingBytes}-byte binding`);
  return pages;
}

/** The buffers a pool of `numPages` pages needs when no buffer may exceed `maxBindingBytes`. */
export function latentPagePool(layout: Pick<LatentKvLayout, 'pageBytes'>, numPages: number, maxBindingBytes: number): LatentPagePool {
  checkInt('numPages', numPages, 0);
  const pagesPerBuffer = Math.max(1, Math.min(numPages, pagesPerBinding(layout, maxBindingBytes)));
  const bufferPages = new Array<number>(Math.floor(numPages / pagesPerBuffer)).fill(pagesPerBuffer);
  if (numPages % pagesPerBuffer > 0) bufferPages.push(numPages % pagesPerBuffer);
  return Object.freeze({ numPages, pageBytes: layout.pageBytes, pagesPerBuffer, bufferPages: Object.freeze(bufferPages) });
}

/** Where page `pageId` of the pool lives. */
export function pageLocation(pool: LatentPagePool, pageId: number): PageLocation {
  if (!Number.isInteger(pageId) || pageId < 0 || pageId >= pool.numPages) {
    throw new KvLayoutError(`page id ${pageId} outside the pool's [0, ${pool.numPages})`);
  }
  const buffer = Math.floor(pageId / pool.pagesPerBuffer), index = pageId - buffer * pool.pagesPerBuffer;
  return { buffer, index, byteOffset: index * pool.pageBytes };
}
