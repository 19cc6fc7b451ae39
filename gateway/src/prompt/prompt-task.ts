// What crosses the thread boundary between the HTTP layer and a prompt worker: plain data only (structured
// clone), so failures come back as values with a kind, not as Error classes the clone would flatten.

/** A message reduced to role + text (text parts joined); tool turns keep their fields for templates that render them. */
export interface ChatTaskMessage {
  readonly role: string;
  readonly content: string;
  readonly tool_calls?: readonly { readonly id: string; readonly type: 'function'; readonly function: { readonly name: string; readonly arguments: string } }[];
  readonly tool_call_id?: string;
}

/** Messages already reduced by the HTTP layer. */
export interface ChatPromptTask {
  readonly kind: 'chat';
  readonly messages: readonly ChatTaskMessage[];
  /** OpenAI `tools`, for a template that renders them itself (its `tools` variable); absent otherwise. */
  readonly tools?: readonly object[];
  /** Open an assistant turn after the messages (transformers' add_generation_prompt). */
  readonly addGenerationPrompt: boolean;
  /** Leave the final message open, to be continued (assistant prefill). */
  readonly continueFinalMessage: boolean;
}

/** A completion prompt's text; it gets the tokenizer's bos as transformers' tokenizer(prompt) does. */
export interface TextPromptTask {
  readonly kind: 'text';
  readonly text: string;
}

/** Ids back to text (POST /detokenize), special tokens kept as vLLM's does. */
export interface DetokenizeTask {
  readonly kind: 'detokenize';
  readonly ids: readonly number[];
}

export type PromptTask = ChatPromptTask | TextPromptTask;
export type WorkerTask = PromptTask | DetokenizeTask;

export type PromptResult =
  | { readonly ok: true; readonly ids: number[] }
  | { readonly ok: true; readonly text: string }
  /** 'template': the chat template refused the conversation (its raise_exception); 'tokenizer': the
   *  tokenizer itself failed on the text (e.g. a stack overflow on a huge run without whitespace). */
  | { readonly ok: false; readonly kind: 'template' | 'tokenizer'; readonly message: string };

/** workerData of each prompt worker. */
export interface PromptWorkerData {
  readonly modelDir: string;
}
