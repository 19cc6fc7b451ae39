// Safetensors reading, single-file or sharded (model.safetensors.index.json). Only headers are parsed up
// front; each tensor's bytes are read from disk on demand into one buffer (no whole-file copy in JS memory).
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from './errors.js';

/** The dtypes latentwire accepts for weights; anything else is refused by name. */
export type TensorDtype = 'BF16' | 'F16' | 'F32';
const BYTES: Record<TensorDtype, number> = { BF16: 2, F16: 2, F32: 4 };

export interface TensorInfo {
  readonly name: string;
  readonly dtype: TensorDtype;
  readonly shape: readonly number[];
  readonly file: string;
  /** Absolute byte range in `file`. */
  readonly begin: number;
  readonly end: number;
}

export interface TensorData {
  readonly info: TensorInfo;
  /** Raw little-endian bytes in the stored dtype. */
  readonly bytes: Uint8Array;
}

interface HeaderEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

function readHeader(file: string): TensorInfo[] {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new ModelLoadError(`${file}: too short to be safetensors`);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || 8 + headerLen > size) throw new ModelLoadError(`${file}: header length ${headerLen} exceeds file size ${size}`);
    const headerBuf = Buffer.alloc(headerLen);
    readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, HeaderEntry | Record<string, string>>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (cause) {
      throw new ModelLoadError(`${file}: header is not valid JSON`, { cause });
    }
    const base = 8 + headerLen;
    const out: TensorInfo[] = [];
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = entry as HeaderEntry;
      if (!(e.dtype in BYTES)) {
        throw new ModelLoadError(`tensor ${name} in ${file} has dtype ${e.dtype}; latentwire reads BF16, F16 and F32 weights`);
      }
      const dtype = e.dtype as TensorDtype;
      const [b, en] = e.data_offsets;
      const count = e.shape.reduce((a, d) => a * d, 1);
      if (en - b !== count * BYTES[dtype] || base + en > size) {
        throw new ModelLoadError(`tensor ${name} in ${file}: byte range [${b}, ${en}) does not match shape [${e.shape}] of ${dtype} or the file size`);
      }
      out.push({ name, dtype, shape: e.shape, file, begin: base + b, end: base + en });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** All tensors of a model folder, by name. */
export class SafetensorsIndex {
  private constructor(readonly tensors: ReadonlyMap<string, TensorInfo>) {}

  static open(dir: string): SafetensorsIndex {
    const indexFile = join(dir, 'model.safetensors.index.json');
    const single = join(dir, 'model.safetensors');
    const files: string[] = [];
    if (existsSync(indexFile)) {
      let map: Record<string, string>;
      try {
        map = JSON.parse(readFileSync(indexFile, 'utf8')).weight_map;
      } catch (cause) {
        throw new ModelLoadError(`${indexFile}: not valid JSON with a weight_map`, { cause });
      }
      if (!map || typeof map !== 'object') throw new ModelLoadError(`${indexFile}: no weight_map`);
      for (const f of new Set(Object.values(map))) {
        const p = join(dir, f);
        if (!existsSync(p)) throw new ModelLoadError(`shard ${f} named in ${indexFile} is missing`);
        files.push(p);
      }
    } else if (existsSync(single)) {
      files.push(single);
    } else {
      throw new ModelLoadError(`no model.safetensors or model.safetensors.index.json in ${dir}`);
    }
    const tensors = new Map<string, TensorInfo>();
    for (const f of files) for (const t of readHeader(f)) tensors.set(t.name, t);
    return new SafetensorsIndex(tensors);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string, expectShape?: readonly number[]): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new ModelLoadError(`tensor ${name} is missing from the checkpoint`);
    if (expectShape && (expectShape.length !== t.shape.length || expectShape.some((d, i) => d !== t.shape[i]))) {
      throw new ModelLoadError(`tensor ${name} has shape [${t.shape}], expected [${expectShape}]`);
    }
    return t;
  }

  /** Reads one tensor's bytes from disk. */
  read(name: string, expectShape?: readonly number[]): TensorData {
    const info = this.info(name, expectShape);
    const bytes = new Uint8Array(info.end - info.begin);
    const fd = openSync(info.file, 'r');
    try {
      let done = 0;
      while (done < bytes.length) {
        const n = readSync(fd, bytes, done, bytes.length - done, info.begin + done);
        if (n <= 0) throw new ModelLoadError(`short read of tensor ${name} in ${info.file}`);
        done += n;
      }
    } finally {
      closeSync(fd);
    }
    return { info, bytes };
  }
}

/** Decodes stored bytes to float64 (for CPU references and tests; the GPU keeps 16-bit weights). */
export function tensorToFloat64(t: TensorData): Float64Array {
  return bytesToFloat64(t.bytes, t.info.dtype);
}

/** Decodes raw little-endian bytes of `dtype` to float64. */
export function bytesToFloat64(bytes: Uint8Array, dtype: TensorDtype): Float64Array {
  const n = bytes.length / BYTES[dtype];
  const out = new Float64Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  else if (dtype === 'BF16') {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      u[0] = dv.getUint16(2 * i, true) << 16;
      out[i] = f[0]!;
    }
  } else for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
  return out;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
