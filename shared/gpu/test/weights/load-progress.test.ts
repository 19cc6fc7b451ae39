// Weight-load progress: the bundled tiny checkpoint uploaded on the real GPU runtime reports rising byte
// counts up to a final `done`; the reporter draws a bar on a terminal and writes a line per tenth otherwise.
import test from 'ava';
import { Writable } from 'node:stream';
import { openModelFolder } from '@latentwire/model';
import { FIXTURE_DIR } from '@latentwire/testing';
import { testGpu } from '../../src/testing.js';
import { checkpointBytes, loadProgressReporter, uploadCheckpoint, type LoadProgress } from '../../src/weights/index.js';

test('load progress - uploading the tiny checkpoint reports rising bytes, then done', async (t) => {
  const gpu = await testGpu();
  const folder = openModelFolder(FIXTURE_DIR);
  const reports: LoadProgress[] = [];
  const weights = uploadCheckpoint(gpu, folder, (p) => void reports.push(p));
  t.teardown(() => weights.buffers.forEach((b) => b.destroy()));
  const total = checkpointBytes(folder);
  t.true(reports.length > 10);
  t.true(reports.every((r) => r.totalBytes === total));
  for (let i = 1; i < reports.length; i++) t.true(reports[i]!.loadedBytes >= reports[i - 1]!.loadedBytes);
  const last = reports.at(-1)!;
  t.true(last.done);
  t.is(reports.filter((r) => r.done).length, 1);
  t.true(last.loadedBytes > 0 && last.loadedBytes <= total);
  t.true(reports.some((r) => r.tensor.startsWith('model.layers.0.')), 'names the tensors');
});

const steps = (total: number, n: number): LoadProgress[] =>
  Array.from({ length: n }, (_, i) => ({ loadedBytes: Math.round(((i + 1) * total) / n), totalBytes: total, tensor: `t${i}`, done: false }));

test('load progress - not a terminal: one line per tenth and one at the end', (t) => {
  const lines: { obj: any; msg: string }[] = [];
  const stream = Object.assign(new Writable({ write: (_c, _e, cb) => cb() }), { isTTY: false }) as unknown as NodeJS.WriteStream;
  const report = loadProgressReporter({ log: { info: (obj, msg) => void lines.push({ obj, msg }) }, stream, now: () => 0 });
  const total = 100 * 1024 * 1024;
  for (const p of steps(total, 40)) report(p);
  report({ loadedBytes: total, totalBytes: total, tensor: '', done: true });
  t.deepEqual(lines.map((l) => l.obj.percent), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 100]);
  t.is(lines[0]!.msg, 'loading weights: 10.0 of 100.0 MiB');
  t.is(lines.at(-1)!.msg, 'weights loaded');
  t.like(lines.at(-1)!.obj, { loadedBytes: total, totalBytes: total });
});

test('load progress - on a terminal: a bar that ends at what was loaded', (t) => {
  let out = '';
  const stream = Object.assign(new Writable({ write: (c, _e, cb) => void ((out += c.toString()), cb()) }), {
    isTTY: true, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true,
  }) as unknown as NodeJS.WriteStream;
  const lines: string[] = [];
  const report = loadProgressReporter({ log: { info: (_o, msg) => void lines.push(msg) }, stream });
  const total = 8 * 1024 * 1024;
  for (const p of steps(total, 4)) report({ ...p, loadedBytes: p.loadedBytes / 2 }); // half is never read
  report({ loadedBytes: total / 2, totalBytes: total, tensor: '', done: true });
  t.regex(out, /loading weights \[[█░]+\] 100% 4\.0\/8\.0 MiB/);
  t.deepEqual(lines, ['weights loaded']); // no per-tenth lines beside the bar
});
