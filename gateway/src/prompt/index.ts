// Prompt rendering and tokenization in worker threads.
export { PromptError, PromptPool, maxTokenBytes, type PromptPoolOptions } from './prompt-pool.js';
export type { PromptTask } from './prompt-task.js';
