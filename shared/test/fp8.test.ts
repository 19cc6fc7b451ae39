// FP8 codecs against PyTorch's cast tables (/work/shared/fixtures/fp8), in TypeScript and in WGSL on the
// GPU, bit for bit; and the measurement behind the E4M3 scale layout (latent-layout.ts).
import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  decodeE4M3, decodeE5M2, decodeFp8Array, encodeE4M3, encodeE5M2, encodeFp8Array, f32Bits, f32FromBits, packFp8, unpackFp8,
} from '../src/kv/fp8.js';
import { fp8Wgsl } from '../src/kv/fp8-wgsl.js';
import { uniformStructWgsl } from '../src/gpu/uniforms.js';
import type { KernelProgram } from '../src/gpu/program.js';
import { bf16Bits } from '../src/kernels/weight-dtype.js';
import { latentScale } from '../src/kernels/kv-quantize/latent-row-cpu.js';
import { rng, testGpu } from './helpers/gpu.js';

type Value = number | null | 'inf' | '-inf';
interface Table { max: number; decode: Value[]; encode: [number, number, number][] }
const fixture = JSON.parse(readFileSync('/work/shared/fixtures/fp8/fp8.json', 'utf8')) as { formats: { e4m3: Table; e5m2: Table } };
const value = (v: Value) => (v === null ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v);

const codecs = {
  e4m3: { enc: encodeE4M3, dec: decodeE4M3, wgslEnc: 'e4m3_encode', wgslDec: 'e4m3_decode', unpack: 'e4m3_unpack4' },
  e5m2: { enc: encodeE5M2, dec: decodeE5M2, wgslEnc: 'e5m2_encode', wgslDec: 'e5m2_decode', unpack: 'e5m2_unpack4' },
} as const;

/** Extra inputs the tables lack: f32 subnormals, NaN, infinities, signed zeros, f32 max. */
const EDGE_BITS = [0x00000001, 0x80000001, 0x007fffff, 0x807fffff, 0x00400000, 0x7fc00000, 0xffc00000, 0x7f800001,
  0x7f800000, 0xff800000, 0x00000000, 0x80000000, 0x7f7fffff, 0xff7fffff, 0x00800000, 0x80800000];

for (const [name, c] of Object.entries(codecs)) {
  const table = fixture.formats[name as 'e4m3' | 'e5m2'];

  test(`fp8 - ${name} TypeScript decoder matches every code`, (t) => {
    t.is(table.decode.length, 256);
    for (let i = 0; i < 256; i++) t.true(Object.is(c.dec(i), value(table.decode[i]!)), `code ${i}`);
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

  test(`fp8 - ${name} WGSL encoder and decoders match on the GPU, bit for bit`, async (t) => {
    const gpu = await testGpu();
    const xs = Uint32Array.from([...table.encode.map(([x]) => f32Bits(x)), ...EDGE_BITS]);
    const n = xs.length;
    const codes = Uint32Array.from({ length: 256 }, (_, i) => i);
    const xb = gpu.upload('fp8 x', xs), cb = gpu.upload('fp8 codes', codes), wb = gpu.upload('fp8 words', packFp8(codes));
    const enc = gpu.buffer('fp8 enc', n * 2 * 4), dec = gpu.buffer('fp8 dec', 256 * 2 * 4);
    const U = { n: 'u32' } as const;
    const program: KernelProgram = {
      shader: {
        label: `fp8_test_${name}`, uniforms: U, source: /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> words: array<u32>;
@group(0) @binding(3) var<storage, read_write> enc: array<u32>;
@group(0) @binding(4) var<storage, read_write> dec: array<u32>;
${uniformStructWgsl(U, 5)}
${fp8Wgsl}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  if (i < u.n) {
    enc[2u * i] = ${c.wgslEnc}_raw(bitcast<f32>(x[i]));
    enc[2u * i + 1u] = ${c.wgslEnc}(bitcast<f32>(x[i]));
  }
  if (i < 256u) {
    dec[2u * i] = bitcast<u32>(${c.wgslDec}(codes[i]));
    dec[2u * i + 1u] = bitcast<u32>(${c.unpack}(words[i / 4u])[i % 4u]);
  }
}`,
      },
      buffers: [xb, cb, wb, enc, dec],
      uniformValues: { n },
      workgroups: [Math.ceil(Math.max(n, 256) / 64)],
    };
    await gpu.run([program]);
    const e = await gpu.readU32(enc, 0, 2 * n);
    const d = await gpu.readU32(dec, 0, 512);
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const x = f32FromBits(xs[i]!);
      const [raw, sat] = i < table.encode.length ? table.encode[i]!.slice(1) : [c.enc(x, false), c.enc(x, true)];
      if (e[2 * i] !== raw || e[2 * i + 1] !== sat) bad++;
    }
    t.is(bad, 0, `${bad} of ${n} encodes differ`);
    for (let i = 0; i < 256; i++) {
      const want = value(table.decode[i]!);
      t.true(Object.is(f32FromBits(d[2 * i]!), want), `decode ${i}`);
      t.true(Object.is(f32FromBits(d[2 * i + 1]!), want), `unpack4 ${i}`);
    }
    gpu.destroy(xb, cb, wb, enc, dec);
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

// ---- the measurement behind latent-layout.ts's E4M3 scale layout ----
function gaussian(seed: number): () => number {
  const r = rng(seed);
  return () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}
const bf16 = (x: number) => f32FromBits(bf16Bits(f32Bits(x)) << 16);
const e4m3Block = (v: number[]) => {
  const s = latentScale(v);
  return v.map((x) => Math.fround(decodeE4M3(encodeE4M3(Math.fround(x / s))) * s));
};
const blocks = (v: number[], n: number) => Array.from({ length: Math.ceil(v.length / n) }, (_, i) => e4m3Block(v.slice(i * n, i * n + n))).flat();

const R = 512, ROPE = 64;
const SCHEMES: Record<string, (row: number[]) => number[]> = {
  'per-token, all e4m3': (row) => e4m3Block(row),
  'per-128 block, all e4m3': (row) => blocks(row, 128),
  'per-token c, rope bf16': (row) => [...e4m3Block(row.slice(0, R)), ...row.slice(R).map(bf16)],
  'per-128 c, rope bf16': (row) => [...blocks(row.slice(0, R), 128), ...row.slice(R).map(bf16)],
  'e5m2': (row) => row.map((x) => decodeE5M2(encodeE5M2(x))),
  'bf16': (row) => row.map(bf16),
};

/** Mean/max over rows of ‖row' − row‖/‖row‖ and of |q·(row' − row)| / rms(q·row). */
function measure(cStd: (i: number) => number, ropeStd: (i: number) => number, rows = 2000) {
  const g = gaussian(7);
  const w = Array.from({ length: R }, (_, i) => cStd(i) * (1 + 0.1 * g()));
  const data = Array.from({ length: rows }, () => [
    ...w.map((wi) => Math.fround(g() * wi)), ...Array.from({ length: ROPE }, (_, i) => Math.fround(g() * ropeStd(i)))]);
  const qs = data.map(() => Array.from({ length: R + ROPE }, () => g()));
  const rmsDot = Math.sqrt(data.reduce((s, x, t) => s + x.reduce((d, v, i) => d + v * qs[t]![i]!, 0) ** 2, 0) / rows);
  const out: Record<string, number[]> = {};
  for (const [name, f] of Object.entries(SCHEMES)) {
    let rowMean = 0, rowMax = 0, dotMean = 0, dotMax = 0;
    data.forEach((x, t) => {
      const y = f(x);
      let e = 0, n = 0, dd = 0;
      for (let i = 0; i < x.length; i++) { e += (y[i]! - x[i]!) ** 2; n += x[i]! ** 2; dd += (y[i]! - x[i]!) * qs[t]![i]!; }
      const re = Math.sqrt(e / n), de = Math.abs(dd) / rmsDot;
      rowMean += re / rows; rowMax = Math.max(rowMax, re); dotMean += de / rows; dotMax = Math.max(dotMax, de);
    });
    out[name] = [rowMean, rowMax, dotMean, dotMax];
  }
  return out;
}

test('fp8 - scale layouts: rope in bf16 buys accuracy, finer scale blocks little', (t) => {
  const cases = {
    'w ≈ 1, k_pe N(0,3)': measure(() => 1, () => 3),
    '2% channels w=8, 8 rope dims N(0,10)': measure((i) => (i % 50 === 7 ? 8 : 1), (i) => (i < 8 ? 10 : 3)),
  };
  for (const [name, res] of Object.entries(cases)) {
    t.log(name);
    for (const [s, [a, b, c, d]] of Object.entries(res)) {
      t.log(`  ${s.padEnd(26)} row err mean ${(100 * a!).toFixed(2)}% max ${(100 * b!).toFixed(2)}%  q·row err mean ${(100 * c!).toFixed(2)}% max ${(100 * d!).toFixed(2)}%`);
    }
    const chosen = res['per-token c, rope bf16']!, allFp8 = res['per-token, all e4m3']!;
    t.true(chosen[2]! < 0.8 * allFp8[2]!); // bf16 rope: >= 20% less score error
    t.true(res['per-128 block, all e4m3']![2]! > 0.85 * allFp8[2]!); // blocks alone: < 15% better
  }
});
