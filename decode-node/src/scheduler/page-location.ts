// A layer's page pool can exceed one storage-buffer binding (maxStorageBufferBindingSize), so it is split
// into several GPU buffers of `pagesPerBuffer` pages each (the last may be shorter). Page ids stay global;
// these helpers say where a page lives.

export interface PageLocation {
  /** Which of the pool's GPU buffers holds the page. */
  readonly buffer: number;
  /** The page's index within that buffer. */
  readonly index: number;
}

function checkPositiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
}

/** Page `pageId` of a pool split into buffers of `pagesPerBuffer` pages. */
export function pageLocation(pageId: number, pagesPerBuffer: number): PageLocation {
  checkPositiveInt('pagesPerBuffer', pagesPerBuffer);
  if (!Number.isInteger(pageId) || pageId < 0) throw new RangeError(`page id must be a non-negative integer, got ${pageId}`);
  return { buffer: Math.floor(pageId / pagesPerBuffer), index: pageId % pagesPerBuffer };
}

/** Pages in each buffer of a `numPages` pool: full buffers, then the remainder. */
export function bufferPageCounts(numPages: number, pagesPerBuffer: number): number[] {
  checkPositiveInt('pagesPerBuffer', pagesPerBuffer);
  if (!Number.isInteger(numPages) || numPages < 0) throw new RangeError(`numPages must be a non-negative integer, got ${numPages}`);
  const counts = new Array<number>(Math.floor(numPages / pagesPerBuffer)).fill(pagesPerBuffer);
  if (numPages % pagesPerBuffer > 0) counts.push(numPages % pagesPerBuffer);
  return counts;
}

/** Most whole pages of `pageBytes` that fit one binding of `maxBindingBytes` (a page is never split). */
export function pagesPerBinding(maxBindingBytes: number, pageBytes: number): number {
  checkPositiveInt('pageBytes', pageBytes);
  const pages = Math.floor(maxBindingBytes / pageBytes);
  if (!(pages >= 1)) throw new RangeError(`a ${pageBytes}-byte page does not fit a ${maxBindingBytes}-byte binding`);
  return pages;
}
