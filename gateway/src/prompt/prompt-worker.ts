// A prompt worker (one thread of the PromptPool): loads the model's tokenizer and chat template once, then
// renders and tokenizes prompts so the gateway's event loop never does (a megabyte prompt takes seconds).
import { workerData } from 'node:worker_threads';
import { ChatTemplateError, loadChatTemplate, Tokenizer } from '@latentwire/model';
import type { PromptResult, PromptWorkerData, WorkerTask } from './prompt-task.js';

const { modelDir } = workerData as PromptWorkerData;
const tokenizer = Tokenizer.load(modelDir);
const chatTemplate = loadChatTemplate(modelDir, tokenizer);

export default function tokenizePrompt(task: WorkerTask): PromptResult {
  let text: string;
  if (task.kind === 'detokenize') {
    try {
      return { ok: true, text: tokenizer.decode(task.ids) };
    } catch (err) {
      return { ok: false, kind: 'tokenizer', message: `${(err as Error).name}: ${(err as Error).message}` };
    }
  }
  if (task.kind === 'chat') {
    // The HTTP layer checks for a template before sending a chat task; a folder changed under us is ours.
    if (!chatTemplate) throw new Error(`the model in ${modelDir} has no chat template`);
    try {
      text = chatTemplate.render(task.messages, {
        addGenerationPrompt: task.addGenerationPrompt, continueFinalMessage: task.continueFinalMessage, ...(task.tools ? { extra: { tools: task.tools } } : {}),
      });
    } catch (err) {
      if (err instanceof ChatTemplateError) return { ok: false, kind: 'template', message: err.message };
      throw err;
    }
  } else text = task.text;
  try {
    // A chat template writes its own bos; a raw prompt gets the tokenizer's default.
    return { ok: true, ids: tokenizer.encode(text, task.kind === 'chat' ? { addBos: false } : {}) };
  } catch (err) {
    // RangeError (call stack) or the library's own errors: the text is at fault, never the process.
    return { ok: false, kind: 'tokenizer', message: `${(err as Error).name}: ${(err as Error).message}` };
  }
}
