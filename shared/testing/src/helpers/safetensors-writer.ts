// A small safetensors writer for tests: the real format (8-byte little-endian header length, JSON header padded
// to 8 bytes, tensors back to back), plus ways to write what a loader must refuse: any dtype name, a shape that
// does not match the model, or bytes that do not match the shape.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { bf16Bits, bf16BitsToNumber } from './bf16.js';

export interface TensorToWrite {
  readonly name: string;
  /** BF16, F16, F32, F64, I64, I32, I16, I8, U8 encode `values`; other names (F8_E4M3, ...) need `bytes` or get zeros. */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly values?: ArrayLike<number>;
  /** Written as is, whatever dtype and shape claim (e.g. a byte count that contradicts the shape). */
  readonly bytes?: Uint8Array;
}

const ELEMENT_BYTES: Record<string, number> = {
  BF16: 2, F16: 2, F32: 4, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float → IEEE half bits, round to nearest even (through float32, as torch does from a float32 tensor). */
export function f16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  const roundShift = (m: number, shift: number) => {
    const kept = Math.floor(m / 2 ** shift);
    const rest = m - kept * 2 ** shift;
    const halfway = 2 ** (shift - 1);
    return rest > halfway || (rest === halfway && kept % 2 === 1) ? kept + 1 : kept;
  };
  if (e <= 0) return e < -10 ? sign : sign | roundShift(mant | 0x800000, 14 - e); // subnormal half
  return sign | (roundShift((e << 23) | mant, 13) & 0x7fff); // a carry rounds up into the exponent, as it should
}

export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** What a value reads back as after being stored in `dtype` (identity for dtypes without rounding here). */
export function storedValue(v: number, dtype: string): number {
  if (dtype === 'BF16') return bf16BitsToNumber(bf16Bits(v));
  if (dtype === 'F16') return f16BitsToNumber(f16Bits(v));
  if (dtype === 'F32') return Math.fround(v);
  return v;
}

function encode(t: TensorToWrite): Uint8Array {
  if (t.bytes) return t.bytes;
  const size = ELEMENT_BYTES[t.dtype];
  if (size === undefined) throw new Error(`${t.name}: no element size known for dtype ${t.dtype}; pass bytes`);
  const count = t.shape.reduce((a, d) => a * d, 1);
  const out = new Uint8Array(count * size);
  if (!t.values) return out;
  if (t.values.length !== count) throw new Error(`${t.name}: ${t.values.length} values for shape [${t.shape}]`);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    const v = t.values[i]!;
    switch (t.dtype) {
      case 'BF16': dv.setUint16(2 * i, bf16Bits(v), true); break;
      case 'F16': dv.setUint16(2 * i, f16Bits(v), true); break;
      case 'F32': dv.setFloat32(4 * i, v, true); break;
      case 'F64': dv.setFloat64(8 * i, v, true); break;
      case 'I64': dv.setBigInt64(8 * i, BigInt(Math.round(v)), true); break;
      case 'I32': dv.setInt32(4 * i, v, true); break;
      case 'I16': dv.setInt16(2 * i, v, true); break;
      case 'I8': dv.setInt8(i, v); break;
      case 'U8': dv.setUint8(i, v); break;
      default: throw new Error(`${t.name}: cannot encode values as ${t.dtype}; pass bytes`);
    }
  }
  return out;
}

/** Writes one .safetensors file (creating its folder). */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = { format: 'pt' }): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const bytes = encode(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // the format pads the header with spaces
  const headerBytes = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length));
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, Buffer.concat([length, headerBytes, ...blobs]));
}
