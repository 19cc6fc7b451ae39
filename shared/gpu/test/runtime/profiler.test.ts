// The GPU profiler's two modes over real timestamp queries (lavapipe has them): per kernel, one entry per
// dispatch under its shader's label; per run, one entry per run under RUN_PROFILE_LABEL, spanning its dispatches;
// paused, nothing timed and the work still done.
import test from 'ava';
import { siluMul } from '../../src/kernels/silu-mul/silu-mul.js';
import { uploadF32 } from '../../src/testing.js';
import { Gpu, RUN_PROFILE_LABEL } from '../../src/runtime/index.js';
import { gpuOptionsFromEnv } from '../../src/runtime/gpu-env.js';
import { randomArray } from '@latentwire/testing';

async function profiled(t: { teardown(f: () => void): void }, profile: true | 'runs'): Promise<Gpu> {
  const gpu = await Gpu.create({ ...gpuOptionsFromEnv(process.env), profile });
  t.teardown(() => gpu.dispose());
  return gpu;
}

function work(gpu: Gpu) {
  const gu = uploadF32(gpu, 'gate_up', randomArray(2 * 2 * 33, 1, 4));
  const y = gpu.buffer('y', 2 * 33 * 4);
  const programs = [siluMul({ gate: gu, y, rows: 2, cols: 33 }), siluMul({ gate: gu, y, rows: 1, cols: 33 }), siluMul({ gate: gu, y, rows: 2, cols: 33 })];
  return { programs, y };
}

test.serial('profiler - per kernel: every dispatch timed under its shader label', async (t) => {
  const gpu = await profiled(t, true);
  if (!gpu.profiler) return t.pass('no timestamp queries on this adapter');
  const { programs } = work(gpu);
  gpu.profiler.reset(); // the start's occupancy probe ran under it
  await gpu.run(programs);
  await gpu.run(programs.slice(0, 1));
  const report = gpu.profiler.report();
  t.deepEqual(report.map((r) => r.label), [programs[0]!.shader.label]);
  t.is(report[0]!.count, 4);
  t.true(report[0]!.ms >= 0);
});

test.serial('profiler - per run: one entry a run, whatever its dispatches; paused: none, and the work still done', async (t) => {
  const gpu = await profiled(t, 'runs');
  if (!gpu.profiler) return t.pass('no timestamp queries on this adapter');
  const { programs, y } = work(gpu);
  gpu.profiler.reset();
  await gpu.run(programs);
  await gpu.run(programs.slice(0, 1));
  const report = gpu.profiler.report();
  t.deepEqual(report.map((r) => r.label), [RUN_PROFILE_LABEL]);
  t.is(report[0]!.count, 2);
  t.true(report[0]!.ms >= 0);
  gpu.profiler.reset();
  gpu.profiler.paused = true;
  gpu.write(y, new Float32Array(2 * 33));
  await gpu.run(programs);
  t.deepEqual(gpu.profiler.report(), []);
  t.true((await gpu.readF32(y)).some((v) => v !== 0), 'the paused run still computed');
});
