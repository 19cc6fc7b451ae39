// One streamed /v1/completions request through the official `openai` client, timed as SGLang's
// bench_serving times it: TTFT at the first chunk carrying text, one inter-token latency per later chunk
// with text (the gap since the previous one: a chunk may carry more than one token when the decode node
// gathered several into one tokens message), end to end at the stream's end. Output tokens come from the
// usage chunk (stream_options.include_usage).
import type OpenAI from 'openai';
import type { CompletionCreateParamsStreaming } from 'openai/resources/completions';
import type { PlannedRequest } from './load-gen.js';

export interface RequestResult {
  readonly index: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** ms after the run's start. */
  readonly start: number;
  readonly end: number;
  readonly ttftMs: number;
  readonly itlMs: readonly number[];
  readonly e2eMs: number;
}

export async function streamCompletion(client: OpenAI, model: string, r: PlannedRequest, t0: number): Promise<RequestResult> {
  const start = performance.now();
  let first = NaN, last = start, chunks = 0, outputTokens = 0;
  const itlMs: number[] = [];
  const done = (ok: boolean, error?: string): RequestResult => {
    const end = performance.now();
    return {
      index: r.index, ok, ...(error ? { error } : {}), inputTokens: r.promptIds.length, outputTokens: outputTokens || chunks,
      start: start - t0, end: end - t0, ttftMs: first - start, itlMs, e2eMs: end - start,
    };
  };
  try {
    // ignore_eos is the server's extension (vLLM's and SGLang's too): every request produces max_tokens
    const params: CompletionCreateParamsStreaming & { ignore_eos: boolean } = {
      model, prompt: r.promptIds, max_tokens: r.maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true }, ignore_eos: true,
    };
    const stream = await client.completions.create(params);
    for await (const chunk of stream) {
      if (chunk.usage) outputTokens = chunk.usage.completion_tokens;
      if (!chunk.choices[0]?.text) continue;
      const now = performance.now();
      if (chunks++ === 0) first = now;
      else itlMs.push(now - last);
      last = now;
    }
    if (chunks === 0) return done(false, 'no text streamed');
    return done(true);
  } catch (err) {
    return done(false, (err as Error).message.slice(0, 200));
  }
}
