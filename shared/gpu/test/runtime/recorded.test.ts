// The runtime's encode paths: recorded programs (Gpu.record) run as the same programs run plainly, among
// plain ones in order, with their own uniforms whatever later plain runs of the same shader use; runAndRead's
// copy-out; the dispatch counter; packUniformsInto.
import test from 'ava';
import { siluMul } from '../../src/kernels/silu-mul/silu-mul.js';
import { testGpu, uploadF32 } from '../../src/testing.js';
import { packUniforms, packUniformsInto, type KernelShader } from '../../src/runtime/index.js';
import { randomArray } from '@latentwire/testing';

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

test.serial('recorded programs - encode what the same programs do when run plainly, each time they run', async (t) => {
  const gpu = await testGpu();
  const M = 3, I = 37;
  const gu = uploadF32(gpu, 'gate_up', randomArray(M * 2 * I, 1, 4));
  const y1 = gpu.buffer('y1', M * I * 4), y2 = gpu.buffer('y2', M * I * 4);
  const programs = [siluMul({ gate: gu, y: y1, rows: M, cols: I }), siluMul({ gate: gu, y: y2, rows: 2, cols: 20, outOffset: 5 })];
  await gpu.run(programs);
  const want1 = await gpu.readF32(y1), want2 = await gpu.readF32(y2);
  const rec = await gpu.record(programs, 'test');
  t.is(rec.dispatches, 2);
  for (let i = 0; i < 2; i++) {
    gpu.write(y1, new Float32Array(M * I));
    gpu.write(y2, new Float32Array(M * I));
    const before = gpu.dispatches;
    await gpu.run([rec]);
    t.is(gpu.dispatches - before, 2);
    t.deepEqual(bits(await gpu.readF32(y1)), bits(want1));
    t.deepEqual(bits(await gpu.readF32(y2)), bits(want2));
  }
  rec.dispose();
  await t.throwsAsync(gpu.run([rec]), { message: /disposed/ });
  gpu.destroy(gu, y1, y2);
});

test.serial('recorded programs - keep their uniforms while plain runs of the same shader use others, and run in order among them', async (t) => {
  const gpu = await testGpu();
  const I = 16;
  const a = uploadF32(gpu, 'a', randomArray(2 * I, 2, 4));
  const b = gpu.buffer('b', 2 * I * 4); // b = silu-mul(a), written by the recorded program
  const c = gpu.buffer('c', I * 4); // c = silu-mul(b as gate ‖ up), by a plain one after it
  const rec = await gpu.record([siluMul({ gate: a, y: b, rows: 1, cols: I })]);
  // a plain run of the same shader with other uniform values (another column count), between recorded runs
  await gpu.run([siluMul({ gate: a, y: b, rows: 1, cols: I / 2 })]);
  await gpu.run([siluMul({ gate: a, y: b, rows: 1, cols: I })]);
  const wantB = await gpu.readF32(b, 0, I);
  await gpu.run([siluMul({ gate: b, y: c, rows: 1, cols: I / 2 })]);
  const wantC = await gpu.readF32(c, 0, I / 2);
  gpu.write(b, new Float32Array(2 * I));
  gpu.write(c, new Float32Array(I));
  await gpu.run([rec, siluMul({ gate: b, y: c, rows: 1, cols: I / 2 })]);
  t.deepEqual(bits(await gpu.readF32(b, 0, I)), bits(wantB));
  t.deepEqual(bits(await gpu.readF32(c, 0, I / 2)), bits(wantC));
  rec.dispose();
  gpu.destroy(a, b, c);
});

test.serial('runAndRead - the copy-out in the same submit reads what read() reads, with its staging buffer reused', async (t) => {
  const gpu = await testGpu();
  const I = 9;
  const a = uploadF32(gpu, 'a', randomArray(2 * I, 3, 4));
  const y = gpu.buffer('y', I * 4);
  for (let i = 0; i < 3; i++) {
    const { bytes } = await gpu.runAndRead([siluMul({ gate: a, y, rows: 1, cols: I })], y, 4, 7 * 4);
    const got = new Float32Array(await bytes);
    t.is(got.length, 7);
    t.deepEqual(bits(got), bits(await gpu.readF32(y, 4, 7)));
  }
  // odd byte counts and nothing to run but the copy
  const { bytes } = await gpu.runAndRead([], y, 0, 6);
  t.is((await bytes).byteLength, 6);
  gpu.destroy(a, y);
});

test('packUniformsInto - writes what packUniforms returns, at the offset asked', (t) => {
  const spec = { a: 'u32', b: 'i32', c: 'f32', d: 'u32', e: 'u32' } as const;
  const values = { a: 7, b: -3, c: 1.5, d: 0xffffffff, e: 0 };
  const want = new Uint8Array(packUniforms(spec, values));
  t.is(want.length, 32);
  const staging = new Uint8Array(64 + 32);
  packUniformsInto(spec, values, new DataView(staging.buffer), 64);
  t.deepEqual(Array.from(staging.subarray(64, 64 + 20)), Array.from(want.subarray(0, 20)));
  t.throws(() => packUniformsInto(spec, { ...values, a: -1 }, new DataView(staging.buffer), 0), { message: /not a u32/ });
});
