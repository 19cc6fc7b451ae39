// PyTorch's FP8 cast tables (fixtures/fp8.json, see fixtures/fp8.README.md) as numbers, for the TypeScript
// and the WGSL codec tests alike.
import { readTestFixture } from './model-fixture.js';

type StoredValue = number | null | 'inf' | '-inf';
interface StoredTable { max: number; decode: StoredValue[]; encode: [number, number, number][] }

export interface Fp8Table {
  /** Largest finite value. */
  readonly max: number;
  /** decode[code]: the value of each of the 256 codes (NaN, ±Infinity included). */
  readonly decode: readonly number[];
  /** [x, raw, sat]: an exact f32 input, its code by a plain cast, its code after clamping to ±max. */
  readonly encode: readonly (readonly [number, number, number])[];
}

const toNumber = (v: StoredValue) => (v === null ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v);

export function readFp8Tables(): { readonly e4m3: Fp8Table; readonly e5m2: Fp8Table } {
  const { formats } = readTestFixture<{ formats: { e4m3: StoredTable; e5m2: StoredTable } }>('fp8.json');
  const table = (t: StoredTable): Fp8Table => ({ max: t.max, decode: t.decode.map(toNumber), encode: t.encode });
  return { e4m3: table(formats.e4m3), e5m2: table(formats.e5m2) };
}

/** f32 bit patterns the tables lack: subnormals, NaN, infinities, signed zeros, f32 max, smallest normals. */
export const FP8_EDGE_BITS: readonly number[] = [0x00000001, 0x80000001, 0x007fffff, 0x807fffff, 0x00400000, 0x7fc00000, 0xffc00000,
  0x7f800001, 0x7f800000, 0xff800000, 0x00000000, 0x80000000, 0x7f7fffff, 0xff7fffff, 0x00800000, 0x80800000];
