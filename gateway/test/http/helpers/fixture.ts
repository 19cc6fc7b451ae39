// The bundled tiny model and its transformers reference, for golden prompt ids and replayed outputs.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openModelFolder, type ModelFolder } from '@latentwire/model';

/** Walks up from this compiled file to the repo's models/tiny-deepseek-v2. */
function findModel(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; ) {
    const candidate = join(dir, 'models', 'tiny-deepseek-v2');
    if (existsSync(join(candidate, 'config.json'))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`models/tiny-deepseek-v2 not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const MODEL_DIR = findModel();
export const MODEL_ID = 'tiny-deepseek-v2';
export const EOS = 1;

export interface ReferenceCase {
  readonly prompt: string;
  readonly input_ids: readonly number[];
  readonly greedy_ids: readonly number[];
}
export const REFERENCE: readonly ReferenceCase[] = (JSON.parse(readFileSync(join(MODEL_DIR, 'reference.json'), 'utf8')) as { cases: ReferenceCase[] }).cases;

let opened: ModelFolder | undefined;
/** Opened once per test file. */
export function model(): ModelFolder {
  return (opened ??= openModelFolder(MODEL_DIR));
}
