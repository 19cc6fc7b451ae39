// Free list of latent-KV page ids [0, numPages). Every layer's pool uses the same ids (a sequence's page i is
// pageTable[i] in every layer), so one allocator serves the whole model.
//
// Pages are reference-counted: allocate() hands a page out with one reference, share() adds references (the
// n choices of one prompt reference its full prompt pages, never copies), and free() drops one reference per
// id; a page returns to the free list when its last reference is dropped.
//
// The free ids live in a binary min-heap so allocation always hands out the lowest free ids first: the order is
// a pure function of the allocate/free history, which lets tests assert exact page ids.

export class PageAllocator {
  private readonly heap: Int32Array;
  private heapSize: number;
  /** References per page; 0 = free. */
  private readonly refs: Uint32Array;

  constructor(readonly numPages: number) {
    if (!Number.isInteger(numPages) || numPages < 0 || numPages > 2 ** 31 - 1) {
      throw new RangeError(`numPages must be a non-negative int32, got ${numPages}`);
    }
    // An ascending array already satisfies the heap property.
    this.heap = Int32Array.from({ length: numPages }, (_, i) => i);
    this.heapSize = numPages;
    this.refs = new Uint32Array(numPages);
  }

  get freeCount(): number {
    return this.heapSize;
  }

  get usedCount(): number {
    return this.numPages - this.heapSize;
  }

  isAllocated(id: number): boolean {
    return this.refCount(id) > 0;
  }

  /** References a page holds (0: free, or not a page id). */
  refCount(id: number): number {
    return Number.isInteger(id) && id >= 0 && id < this.numPages ? this.refs[id]! : 0;
  }

  /**
   * One more reference to each of `ids` (allocated pages; an id may repeat, one reference each time). Throws on
   * a free page or an id out of range, before changing anything.
   */
  share(ids: readonly number[]): void {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.numPages) throw new RangeError(`page id ${id} is outside [0, ${this.numPages})`);
      if (this.refs[id] === 0) throw new Error(`share of free page ${id}`);
    }
    for (const id of ids) this.refs[id]!++;
  }

  /** n pages, lowest ids first, ascending; null (and nothing taken) when fewer than n are free. */
  allocate(n: number): number[] | null {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`page count must be a non-negative integer, got ${n}`);
    if (n > this.heapSize) return null;
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = this.pop();
      this.refs[id] = 1;
      ids.push(id);
    }
    return ids;
  }

  /**
   * Drops one reference to each of `ids`; a page whose last reference goes returns to the pool. Throws on a
   * double free (more drops of an id than it has references, a page never handed out, or an id twice in `ids`
   * past its references) or an id out of range; all ids are checked before any is freed, so a throwing call
   * changes nothing.
   */
  free(ids: readonly number[]): void {
    const drops = new Map<number, number>();
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.numPages) {
        throw new RangeError(`page id ${id} is outside [0, ${this.numPages})`);
      }
      const n = (drops.get(id) ?? 0) + 1;
      if (n > this.refs[id]!) throw new Error(`double free of page ${id}`);
      drops.set(id, n);
    }
    for (const id of ids) {
      if (--this.refs[id]! === 0) this.push(id);
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
