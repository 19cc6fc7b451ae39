// Streaming detokenization. Byte-level BPE tokens can end in the middle of a UTF-8 character (an emoji is
// often 2-4 tokens), so decoding token by token would emit U+FFFD. Instead, as in TGI and vLLM, keep a window
// of ids from `prefix` (start of the last emitted piece, for context such as leading-space rules) and emit
// decode(window) minus decode(window up to `read`) only once it does not end in an incomplete character.
// Concatenating every push() and flush() equals decoding all ids at once.

export interface Detokenizer {
  /** Adds one generated id; returns the newly complete text (possibly ''). */
  push(id: number): string;
  /** Returns whatever is still held back (an incomplete character at the very end decodes as U+FFFD). */
  flush(): string;
}

const REPLACEMENT = '\uFFFD';

export class IncrementalDetokenizer implements Detokenizer {
  /** Ids from `prefix` on; earlier ids are dropped once emitted so memory stays bounded. */
  private ids: number[] = [];
  /** ids[0, read) is the already-emitted part of the window, kept only as decoding context. */
  private read = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.decode(this.ids.slice(0, this.read));
    const text = this.decode(this.ids);
    if (text.length <= prefixText.length || text.endsWith(REPLACEMENT)) return '';
    // The newest piece becomes the context window for the next push.
    this.ids = this.ids.slice(this.read);
    this.read = this.ids.length;
    return text.slice(prefixText.length);
  }

  flush(): string {
    const prefixText = this.decode(this.ids.slice(0, this.read));
    const text = this.decode(this.ids);
    this.ids = [];
    this.read = 0;
    return text.slice(prefixText.length);
  }
}
