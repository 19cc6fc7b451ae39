// Stop strings over streamed text. A stop string may arrive split over several pieces (tokens), so text
// that could still be the start of one is held back; once a stop string appears, only the text before it is
// released and nothing after. Invariant: the released text never contains a stop string nor a prefix of one
// that a later piece could complete. The first stop string to be complete wins (among those completed by
// the same piece, the one starting first): like every streaming server we cannot wait to see whether a
// stop that started earlier would complete later, so the cut can depend on where pieces (tokens) end.

export interface StopResult {
  /** Text safe to send now. */
  readonly text: string;
  /** A stop string was found; `text` ends right before it and nothing more will be released. */
  readonly stopped: boolean;
}

export class StopMatcher {
  /** Unreleased text: always a proper prefix of some stop string (or '' when there are none). */
  private held = '';
  private done = false;

  constructor(private readonly stops: readonly string[]) {}

  push(piece: string): StopResult {
    if (this.done) return { text: '', stopped: true };
    const buf = this.held + piece;
    const at = this.firstMatch(buf);
    if (at >= 0) {
      this.done = true;
      this.held = '';
      return { text: buf.slice(0, at), stopped: true };
    }
    const keep = this.longestStopPrefixSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** At the end of generation: the held text was never completed into a stop string, so it is output. */
  flush(): string {
    const rest = this.done ? '' : this.held;
    this.held = '';
    return rest;
  }

  /** Start of the earliest stop string in `buf`, or -1. */
  private firstMatch(buf: string): number {
    let best = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (best < 0 || i < best)) best = i;
    }
    return best;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private longestStopPrefixSuffix(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > best; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
