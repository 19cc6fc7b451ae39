// Test helpers: locate the tiny fixture, copy it into temp dirs, and write small safetensors files (for
// broken, resharded or re-laid-out checkpoints).
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Walks up from this compiled file to the repo's models/tiny-deepseek-v2. */
function findFixture(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'models', 'tiny-deepseek-v2');
    if (existsSync(join(candidate, 'config.json'))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error('models/tiny-deepseek-v2 not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const FIXTURE_DIR = findFixture();

export function readFixtureJson<T = any>(name: string): T {
  return JSON.parse(readFileSync(join(FIXTURE_DIR, name), 'utf8')) as T;
}

/** A fresh temp dir, removed at teardown. */
export function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'latentwire-loader-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A temp copy of the whole fixture folder. */
export function copyFixture(t: { teardown(fn: () => void): void }): string {
  const dir = tempDir(t);
  cpSync(FIXTURE_DIR, dir, { recursive: true });
  return dir;
}

export interface RawTensor {
  readonly name: string;
  /** Any dtype string, so tests can write dtypes the loader must refuse. */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

/** Writes a safetensors file: u64 header length, JSON header (padded to 8 bytes), then the tensors' bytes. */
export function writeRawSafetensors(file: string, tensors: readonly RawTensor[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.bytes))]));
}

/** This package's fixtures folder: PyTorch's FP8 cast tables, the Hub configs of DeepSeek-V2 and V2-Lite. */
export const TEST_FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'fixtures');

export function readTestFixture<T = any>(name: string): T {
  return JSON.parse(readFileSync(join(TEST_FIXTURES_DIR, name), 'utf8')) as T;
}
