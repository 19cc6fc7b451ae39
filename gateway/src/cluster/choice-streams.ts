// The tokens of an n > 1 request: one TokenStream per choice (the decode node sends choice i on the tokens
// subject of choiceRequestId(requestId, i)), merged into one stream of events tagged with their choice, in
// arrival order. The request's own subject carries only failures before decoding (a refused prefill-done, a
// failed prefill, an expired lease): a message there fails the whole request. A choice ends with its finish
// reason, or early when its own signal aborts (the gateway finished it: a stop string); the merge ends when
// every choice has ended. A choice's error fails the whole request (its caller cancels the rest).
import type { GenerationEvent } from '../http/backend.js';
import type { TokenStream } from './token-stream.js';

type Pull = { readonly index: number; readonly r: IteratorResult<GenerationEvent, void> };

export async function* mergeChoiceStreams(
  request: TokenStream,
  choices: readonly TokenStream[],
  signal: AbortSignal,
  choiceSignals: readonly (AbortSignal | undefined)[] = [],
): AsyncGenerator<GenerationEvent & { readonly choice: number }, void, undefined> {
  const over = new AbortController(); // `signal`, or the merge's end: stops every stream still read
  const onAbort = (): void => over.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  const iters = choices.map((s, i) => s.events(AbortSignal.any([over.signal, ...(choiceSignals[i] ? [choiceSignals[i]!] : [])])));
  const watch = request.events(over.signal);
  const pending = new Map<number, Promise<Pull>>();
  const pull = (index: number): void => {
    const it = index < 0 ? watch : iters[index]!;
    const p = it.next().then((r) => ({ index, r }));
    p.catch(() => undefined); // raced below; a rejection left behind must not go unhandled
    pending.set(index, p);
  };
  try {
    pull(-1);
    iters.forEach((_, i) => pull(i));
    while (pending.size > (pending.has(-1) ? 1 : 0)) {
      const { index, r } = await Promise.race(pending.values());
      pending.delete(index);
      if (index < 0) {
        // a tokens message on the request's own subject: never sent for n > 1 but a failure (which threw)
        if (!r.done) pull(-1);
        continue;
      }
      if (r.done) continue; // the choice finished (its last event went out) or its signal aborted
      yield { ...r.value, choice: index };
      pull(index);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    over.abort();
    // settle the generators left at a pending next(): aborted signals end them without waiting
    for (const it of [watch, ...iters]) void it.return(undefined).catch(() => undefined);
  }
}
