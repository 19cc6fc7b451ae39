// Chat templating and tokenization off the event loop: a fixed pool of worker threads (piscina), each with
// the model's tokenizer and chat template loaded once at start. The loop only posts the text and gets ids
// back, so /health, heartbeats and other streams keep being served while a long prompt is tokenized.
import { Piscina } from 'piscina';
import type { Tokenizer } from '@latentwire/model';
import type { PromptResult, PromptTask, PromptWorkerData, WorkerTask } from './prompt-task.js';

/** Why a prompt got no ids. 'template' and 'tokenizer' are the request's fault; 'overloaded' is ours. */
export class PromptError extends Error {
  override readonly name = 'PromptError';
  constructor(
    readonly kind: 'template' | 'tokenizer' | 'overloaded',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface PromptPoolOptions {
  readonly modelDir: string;
  /** Worker threads, all started at once (TOKENIZER_THREADS). */
  readonly threads: number;
  /** Tasks waiting for a thread; one more is refused as 'overloaded'. */
  readonly queueMax?: number;
  /** V8 stack of each worker, in MB (node's default when omitted); tests shrink it to provoke an overflow. */
  readonly stackSizeMb?: number;
  /** A worker that died outside a task (piscina replaces it); without a listener it would crash the process. */
  readonly onWorkerError?: (err: unknown) => void;
}

export class PromptPool {
  private readonly pool: Piscina<WorkerTask, PromptResult>;
  private readonly threads: number;

  constructor(opts: PromptPoolOptions) {
    this.threads = opts.threads;
    const workerData: PromptWorkerData = { modelDir: opts.modelDir };
    this.pool = new Piscina({
      filename: new URL('./prompt-worker.js', import.meta.url).href,
      name: 'default',
      minThreads: opts.threads,
      maxThreads: opts.threads,
      idleTimeout: Number.POSITIVE_INFINITY,
      maxQueue: opts.queueMax ?? 1024,
      workerData,
      ...(opts.stackSizeMb === undefined ? {} : { resourceLimits: { stackSizeMb: opts.stackSizeMb } }),
    });
    this.pool.on('error', (err: unknown) => opts.onWorkerError?.(err));
  }

  /** Prompt ids; `signal` (the client going away) stops the worker mid-task (piscina replaces the thread). */
  async run(task: PromptTask, signal?: AbortSignal): Promise<number[]> {
    const r = await this.runTask(task, signal);
    if (!('ids' in r)) throw new Error('a prompt worker answered a prompt without ids');
    return r.ids;
  }

  /** The text of `ids`, special tokens included (POST /detokenize), decoded in a worker as prompts are. */
  async detokenize(ids: readonly number[], signal?: AbortSignal): Promise<string> {
    const r = await this.runTask({ kind: 'detokenize', ids }, signal);
    if (!('text' in r)) throw new Error('a prompt worker answered a detokenize task without text');
    return r.text;
  }

  private async runTask(task: WorkerTask, signal?: AbortSignal): Promise<PromptResult & { ok: true }> {
    let r: PromptResult;
    try {
      r = await this.pool.run(task, signal ? { signal } : {});
    } catch (err) {
      if (signal?.aborted) throw err;
      if ((err as Error).message === 'Task queue is at limit') {
        throw new PromptError('overloaded', 'too many prompts are waiting to be tokenized', { cause: err });
      }
      // The worker died under this text (out of memory, terminated): as a failure of the tokenizer on it.
      throw new PromptError('tokenizer', `${(err as Error).name}: ${(err as Error).message}`, { cause: err });
    }
    if (!r.ok) throw new PromptError(r.kind, r.message);
    return r;
  }

  /** Resolves once the threads have loaded the tokenizer (one empty prompt each), so the first request
   *  does not pay for it; startGateway awaits it before listening. */
  async warm(): Promise<void> {
    await Promise.all(Array.from({ length: this.threads }, () => this.run({ kind: 'text', text: '' })));
  }

  /** Waits for running tasks, then stops the threads. */
  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * The longest token of the vocabulary in UTF-8 bytes of its string form (byte-level 'Ġ' and sentencepiece
 * '▁' count more bytes than they stand for, so this over-estimates, never under). Each token covers a
 * piece of the text, so a text of B bytes has at least ceil(B / this) tokens: a bound that needs no
 * tokenizing. It assumes no normalizer shrinks the text (DeepSeek's tokenizers have none).
 */
export function maxTokenBytes(tokenizer: Pick<Tokenizer, 'idToToken'>, vocabSize: number): number {
  let max = 1;
  // Added tokens may sit past config.json's vocab_size; idToToken answers undefined past the last one.
  for (let id = 0; id < vocabSize + 1024; id++) {
    const s = tokenizer.idToToken(id);
    if (s !== undefined) max = Math.max(max, Buffer.byteLength(s, 'utf8'));
  }
  return max;
}
