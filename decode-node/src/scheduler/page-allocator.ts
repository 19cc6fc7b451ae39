// Free list of latent-KV page ids [0, numPages). Every layer's pool uses the same ids (a sequence's page i is
// pageTable[i] in every layer), so one allocator serves the whole model.
//
// The free ids live in a binary min-heap so allocation always hands out the lowest free ids first: the order is
// a pure function of the allocate/free history, which lets tests assert exact page ids.

export class PageAllocator {
  private readonly heap: Int32Array;
  private heapSize: number;
  private readonly allocated: Uint8Array;

  constructor(readonly numPages: number) {
    if (!Number.isInteger(numPages) || numPages < 0 || numPages > 2 ** 31 - 1) {
      throw new RangeError(`numPages must be a non-negative int32, got ${numPages}`);
    }
    // An ascending array already satisfies the heap property.
    this.heap = Int32Array.from({ length: numPages }, (_, i) => i);
    this.heapSize = numPages;
    this.allocated = new Uint8Array(numPages);
  }

  get freeCount(): number {
    return this.heapSize;
  }

  get usedCount(): number {
    return this.numPages - this.heapSize;
  }

  isAllocated(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.numPages && this.allocated[id] === 1;
  }

  /** n pages, lowest ids first, ascending; null (and nothing taken) when fewer than n are free. */
  allocate(n: number): number[] | null {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`page count must be a non-negative integer, got ${n}`);
    if (n > this.heapSize) return null;
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = this.pop();
      this.allocated[id] = 1;
      ids.push(id);
    }
    return ids;
  }

  /**
   * Returns pages to the pool. Throws on a double free, a page never handed out, an id out of range, or the
   * same id twice in `ids`; all ids are checked before any is freed, so a throwing call changes nothing.
   */
  free(ids: readonly number[]): void {
    const seen = new Set<number>();
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.numPages) {
        throw new RangeError(`page id ${id} is outside [0, ${this.numPages})`);
      }
      if (this.allocated[id] !== 1 || seen.has(id)) throw new Error(`double free of page ${id}`);
      seen.add(id);
    }
    for (const id of ids) {
      this.allocated[id] = 0;
      this.push(id);
    }
  }

  private pop(): number {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap[--this.heapSize]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.heapSize) break;
      const r = l + 1;
      const child = r < this.heapSize && heap[r]! < heap[l]! ? r : l;
      if (heap[child]! >= last) break;
      heap[i] = heap[child]!;
      i = child;
    }
    if (this.heapSize > 0) heap[i] = last;
    return top;
  }

  private push(id: number): void {
    const heap = this.heap;
    let i = this.heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! <= id) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = id;
  }
}
