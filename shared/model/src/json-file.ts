import { readFileSync } from 'node:fs';
import { ModelLoadError } from './errors.js';

/** Reads a JSON file, naming it when it is not valid JSON. */
export function readJsonFile(file: string): unknown {
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ModelLoadError(`${file} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}
