// FP8 codecs against PyTorch's cast tables (@latentwire/testing's fixtures/fp8.json, from torch's casts),
// bit for bit. The WGSL codecs are checked against the same tables in @latentwire/gpu's tests.
import test from 'ava';
import { readFp8Tables } from '@latentwire/testing';
import {
  decodeE4M3, decodeE5M2, decodeFp8Array, encodeE4M3, encodeE5M2, encodeFp8Array, f32Bits, f32FromBits, packFp8, unpackFp8,
} from '../src/numbers/fp8.js';

const fixture = readFp8Tables();
const codecs = { e4m3: { enc: encodeE4M3, dec: decodeE4M3 }, e5m2: { enc: encodeE5M2, dec: decodeE5M2 } } as const;

for (const [name, c] of Object.entries(codecs)) {
  const table = fixture[name as 'e4m3' | 'e5m2'];

  test(`fp8 - ${name} TypeScript decoder matches every code`, (t) => {
    t.is(table.decode.length, 256);
    for (let i = 0; i < 256; i++) t.true(Object.is(c.dec(i), table.decode[i]!), `code ${i}`);
  });

  test(`fp8 - ${name} TypeScript encoder matches PyTorch's raw and saturating casts`, (t) => {
    let bad = 0;
    for (const [x, raw, sat] of table.encode) {
      t.is(Math.fround(x), x); // the fixture's inputs are exact f32 values
      if (c.enc(x, false) !== raw || c.enc(x, true) !== sat) bad++;
    }
    t.is(bad, 0, `${bad} of ${table.encode.length} rows differ`);
  });

  test(`fp8 - ${name} TypeScript encoder: f32 subnormals give ±0, NaN stays NaN, ±inf saturates`, (t) => {
    t.is(c.enc(f32FromBits(0x00000001)), 0x00);
    t.is(c.enc(f32FromBits(0x807fffff)), 0x80);
    t.true(Number.isNaN(c.dec(c.enc(NaN))));
    t.is(c.dec(c.enc(Infinity)), table.max);
    t.is(c.dec(c.enc(-Infinity)), -table.max);
    t.is(c.dec(c.enc(3.4e38)), table.max);
    // round trip of every finite code
    for (let i = 0; i < 256; i++) if (Number.isFinite(c.dec(i))) t.is(c.enc(c.dec(i)), i);
  });
}

test('fp8 - array helpers pack 4 codes per word little-endian and apply scales', (t) => {
  const codes = encodeFp8Array('e4m3', [1, -2, 448, 0.5, 3], 0.5);
  t.deepEqual([...codes], [encodeE4M3(2), encodeE4M3(-4), 0x7e, encodeE4M3(1), encodeE4M3(6)]);
  const words = packFp8(codes);
  t.is(words.length, 2);
  t.is(words[0], codes[0]! | (codes[1]! << 8) | (codes[2]! << 16) | ((codes[3]! << 24) >>> 0));
  t.deepEqual([...unpackFp8(words, 5)], [...codes]);
  t.deepEqual([...decodeFp8Array('e4m3', codes, 0.5)], [1, -2, 224, 0.5, 3]);
  t.deepEqual([...decodeFp8Array('e5m2', encodeFp8Array('e5m2', [1e6, -0.75]))], [57344, -0.75]);
});

