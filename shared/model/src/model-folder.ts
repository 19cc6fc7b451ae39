// One call that opens a Hugging Face model folder: config, tensor headers (checked against the config),
// tokenizer, chat template and generation defaults. No weights are read here; uploaders use `index` and
// `expertLayout` (see weight-slices.ts).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadChatTemplate, type ChatTemplate } from './chat-template.js';
import { normalizeConfig } from './config.js';
import { ModelLoadError } from './errors.js';
import { loadGenerationConfig, type GenerationConfig } from './generation-config.js';
import type { MlaConfig } from './mla-config.js';
import { SafetensorsIndex } from './safetensors.js';
import { validateCheckpoint, type ExpertLayout, type TensorSpec } from './tensor-manifest.js';
import { Tokenizer } from './tokenizer.js';

export interface ModelFolder {
  readonly dir: string;
  readonly config: MlaConfig;
  readonly index: SafetensorsIndex;
  /** How this checkpoint stores routed experts. */
  readonly expertLayout: ExpertLayout;
  /** Every tensor the model uses, in forward order, all verified present with the right shape. */
  readonly tensors: readonly TensorSpec[];
  readonly tokenizer: Tokenizer;
  readonly chatTemplate: ChatTemplate | null;
  readonly generation: GenerationConfig;
  /** sha256 (hex) of config.json and the tensor headers; equal on every node serving the same model. */
  readonly fingerprint: string;
}

export function openModelFolder(dir: string): ModelFolder {
  const abs = resolve(dir);
  if (!existsSync(abs)) throw new ModelLoadError(`model folder ${abs} does not exist`);
  const configFile = join(abs, 'config.json');
  if (!existsSync(configFile)) throw new ModelLoadError(`config.json is missing from ${abs}`);
  const configBytes = readFileSync(configFile);
  let raw: unknown;
  try {
    raw = JSON.parse(configBytes.toString('utf8'));
  } catch (cause) {
    throw new ModelLoadError(`${configFile} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const config = normalizeConfig(raw, configFile);
  const tokenizer = Tokenizer.load(abs);
  const index = SafetensorsIndex.open(abs);
  const { expertLayout, tensors } = validateCheckpoint(config, index);
  return {
    dir: abs,
    config,
    index,
    expertLayout,
    tensors,
    tokenizer,
    chatTemplate: loadChatTemplate(abs, tokenizer),
    generation: loadGenerationConfig(abs, config),
    fingerprint: modelFingerprint(configBytes, index),
  };
}

/**
 * Hashes config.json's bytes and every tensor's name, dtype and shape (sorted by name). File names and
 * offsets are left out so a resharded copy of the same checkpoint keeps its fingerprint; weight values are
 * not hashed (reading hundreds of GB at startup is not an option).
 */
export function modelFingerprint(configBytes: Uint8Array, index: SafetensorsIndex): string {
  const h = createHash('sha256');
  h.update('config.json\0');
  h.update(configBytes);
  h.update('\0tensors\0');
  const names = [...index.tensors.keys()].sort();
  for (const name of names) {
    const t = index.tensors.get(name)!;
    h.update(`${name}\t${t.dtype}\t${t.shape.join(',')}\n`);
  }
  return h.digest('hex');
}
