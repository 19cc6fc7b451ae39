// The CLI as a user runs it (a child process on the real GPU runtime), against the fixture's reference.
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { maxAbsDiff, readFixtureJson } from '@latentwire/testing';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
interface Case { readonly input_ids: number[]; readonly greedy_ids: number[]; readonly step_logits: number[][] }
const [first] = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

test('cli - logits --decode-steps prints the prefill and decode-step logits of transformers and its greedy ids', async (t) => {
  const { stdout } = await run('node', [CLI, 'logits', '--ids', first!.input_ids.join(','), '--decode-steps', '5', '--kv-dtype', 'f32', '--page-size', '4']);
  const out = JSON.parse(stdout) as { step_logits: number[][]; ids: number[] };
  t.deepEqual(out.ids, first!.greedy_ids.slice(0, 5));
  t.is(out.step_logits.length, 5);
  // the f32 cache's figure (fixture-decode.test.ts): measured 7.4e-6 over all steps, bound 5× that
  for (const [i, row] of out.step_logits.entries()) {
    const err = maxAbsDiff(row, first!.step_logits[i]!);
    t.true(err < 4e-5, `step ${i}: max |Δlogit| ${err}`);
  }
});

test('cli - generate decodes through the engine (bf16 cache) and gives the greedy ids', async (t) => {
  const { stdout, stderr } = await run('node', [CLI, 'generate', '--ids', first!.input_ids.join(','), '--max-tokens', '8', '--kv-dtype', 'bf16', '--page-size', '16', '--json']);
  const out = JSON.parse(stdout) as { ids: number[]; text: string };
  t.deepEqual(out.ids, first!.greedy_ids.slice(0, 8));
  // not a terminal: the weight load shows as plain lines on stderr, rising to the end
  const percents = [...stderr.matchAll(/^latentwire: loading weights: [\d.]+ of [\d.]+ MiB \((\d+)%, \d+ ms\)$/gm)].map((m) => Number(m[1]));
  t.true(percents.length >= 5 && percents.length <= 10, stderr);
  t.deepEqual(percents, [...percents].sort((a, b) => a - b));
  t.regex(stderr, /^latentwire: weights loaded \(\d+%, \d+ ms\)$/m);
});
