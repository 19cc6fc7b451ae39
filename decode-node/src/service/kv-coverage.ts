// Which prompt tokens of which layers a handoff's kv-chunks have delivered, so prefill-done can check that
// every layer holds exactly tokens [0, promptTokens) before the sequence decodes from them. Per layer a
// sorted list of disjoint, non-touching [start, end) ranges: a prefill sends a page's rows in order, so a
// layer is one range almost always. A chunk sent twice (a retry after a lost ack) just covers its range again.

export class KvCoverage {
  private readonly ranges: [number, number][][];

  constructor(readonly layers: number, readonly promptTokens: number) {
    if (!Number.isInteger(layers) || layers < 1) throw new RangeError(`KvCoverage: layers ${layers} must be ≥ 1`);
    if (!Number.isInteger(promptTokens) || promptTokens < 1) throw new RangeError(`KvCoverage: promptTokens ${promptTokens} must be ≥ 1`);
    this.ranges = Array.from({ length: layers }, () => []);
  }

  /** Records tokens [start, end) of `layer`; the caller checked 0 <= start < end <= promptTokens. */
  add(layer: number, start: number, end: number): void {
    const list = this.ranges[layer];
    if (!list || !(start >= 0 && start < end && end <= this.promptTokens)) {
      throw new RangeError(`KvCoverage: layer ${layer} tokens [${start}, ${end}) outside ${this.layers} layers × [0, ${this.promptTokens})`);
    }
    // ranges before the new one stay, those touching or overlapping it merge into it, the rest follow
    let lo = start, hi = end;
    const keep: [number, number][] = [];
    let at = 0;
    for (const r of list) {
      if (r[1] < lo) { keep.push(r); at = keep.length; }
      else if (r[0] > hi) keep.push(r);
      else { lo = Math.min(lo, r[0]); hi = Math.max(hi, r[1]); }
    }
    keep.splice(at, 0, [lo, hi]);
    this.ranges[layer] = keep;
  }

  /** Tokens of `layer` delivered so far. */
  covered(layer: number): number {
    return (this.ranges[layer] ?? []).reduce((n, [a, b]) => n + b - a, 0);
  }

  /** undefined when every layer holds [0, promptTokens), else what is missing (for the ack's detail). */
  missing(): string | undefined {
    for (let l = 0; l < this.layers; l++) {
      const list = this.ranges[l]!;
      if (list.length === 1 && list[0]![0] === 0 && list[0]![1] === this.promptTokens) continue;
      const have = list.map(([a, b]) => `[${a}, ${b})`).join(' ') || 'nothing';
      return `layer ${l} has ${this.covered(l)} of ${this.promptTokens} prompt tokens (${have})`;
    }
    return undefined;
  }
}
