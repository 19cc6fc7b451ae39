// The WGSL FP8 codecs against PyTorch's cast tables (@latentwire/testing's fixtures/fp8.json) on the GPU,
// bit for bit; and the measurement behind the E4M3 scale layout (latent-layout.ts).
import test from 'ava';
import { bf16Bits, decodeE4M3, decodeE5M2, encodeE4M3, encodeE5M2, f32Bits, f32FromBits, packFp8 } from '@latentwire/model';
import { FP8_EDGE_BITS, readFp8Tables, rng } from '@latentwire/testing';
import { bindings, type KernelProgram } from '../src/index.js';
import { latentScale } from '../src/kernels/index.js';
import { testGpu } from '../src/testing.js';

const fixture = readFp8Tables();
const codecs = {
  e4m3: { enc: encodeE4M3, dec: decodeE4M3, wgslEnc: 'e4m3_encode', wgslDec: 'e4m3_decode', unpack: 'e4m3_unpack4' },
  e5m2: { enc: encodeE5M2, dec: decodeE5M2, wgslEnc: 'e5m2_encode', wgslDec: 'e5m2_decode', unpack: 'e5m2_unpack4' },
} as const;

for (const [name, c] of Object.entries(codecs)) {
  const table = fixture[name as 'e4m3' | 'e5m2'];

  test(`fp8 - ${name} WGSL encoder and decoders match on the GPU, bit for bit`, async (t) => {
    const gpu = await testGpu();
    const xs = Uint32Array.from([...table.encode.map(([x]) => f32Bits(x)), ...FP8_EDGE_BITS]);
    const n = xs.length;
    const codes = Uint32Array.from({ length: 256 }, (_, i) => i);
    const xb = gpu.upload('fp8 x', xs), cb = gpu.upload('fp8 codes', codes), wb = gpu.upload('fp8 words', packFp8(codes));
    const enc = gpu.buffer('fp8 enc', n * 2 * 4), dec = gpu.buffer('fp8 dec', 256 * 2 * 4);
    const U = { n: 'u32' } as const;
    const B = bindings([['x', 'array<u32>'], ['codes', 'array<u32>'], ['words', 'array<u32>'], ['enc', 'array<u32>', 'read_write'], ['dec', 'array<u32>', 'read_write']], U);
    const program: KernelProgram = {
      shader: B.shader(`fp8_test_${name}`, /* wgsl */ `
${B.wgsl}
//!include fp8
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
}`),
      buffers: B.buffers({ x: xb, codes: cb, words: wb, enc, dec }),
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
      const want = table.decode[i]!;
      t.true(Object.is(f32FromBits(d[2 * i]!), want), `decode ${i}`);
      t.true(Object.is(f32FromBits(d[2 * i + 1]!), want), `unpack4 ${i}`);
    }
    gpu.destroy(xb, cb, wb, enc, dec);
  });
}

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
