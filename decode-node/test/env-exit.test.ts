// The decode node and the CLI refuse each kind of bad value at start-up, before any connection or weight
// upload: exit 2 and the variable's name on stderr. The parser reports every bad variable at once, so one
// process checks them all; sizes the adapter cannot hold are checked right after the device is acquired,
// once the rest parsed, so they take a process of their own.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { runWithBadEnv } from '@latentwire/testing';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const CLI_ARGS = ['generate', '--ids', '1,2'];

test('env - decode node: each kind of bad value exits 2 naming the variable', async (t) => {
  const cases = [
    ['HEARTBEAT_MS', 'soon'], // not a number
    ['MAX_BATCH', '0'], // out of range
    ['KV_CACHE_DTYPE', 'int4'], // not in the enum
    ['ROPE_FREQ_PRECISION', 'bf16'], // not in the enum (the vocabulary is checkpoint | f32)
    ['NATS_URL', ' , '], // empty list
    ['NODE_ID', 'a b'], // not an id
    ['DECODE_ATTENTION_ENGINE', 'tensor'], // not in the enum
  ] as const;
  const [bad, tooBig, noMatrices] = await Promise.all([
    runWithBadEnv(MAIN, cases), runWithBadEnv(MAIN, [['KV_CACHE_MIB', '100000000']]),
    // an adapter without subgroup matrices (lavapipe, where this runs) cannot run the tensor-core kernel
    runWithBadEnv(MAIN, [['DECODE_ATTENTION_ENGINE', 'subgroup-matrix']]),
  ]);
  t.is(bad.code, 2, bad.stderr);
  for (const [i, [name, value]] of cases.entries()) t.truthy(bad.named[i], `${name}=${value} not named in:\n${bad.stderr}`);
  t.is(tooBig.code, 2, tooBig.stderr);
  t.regex(tooBig.named[0] ?? '', /does not fit this adapter/, tooBig.stderr);
  t.is(noMatrices.code, 2, noMatrices.stderr);
  t.regex(noMatrices.named[0] ?? '', /does not fit this adapter: .*subgroup-matrix/, noMatrices.stderr);
});

test('env - CLI: each kind of bad value exits 2 naming the variable', async (t) => {
  const cases = [
    ['DECODE_KV_SPLITS', 'x'], // not a number
    ['PAGE_SIZE', '5000'], // out of range
    ['ROPE_FREQ_PRECISION', 'bf16'], // not in the enum
    ['MODEL_DIR', '/nonexistent/model'], // not a model folder (the CLI reads no list)
  ] as const;
  const [bad, tooBig] = await Promise.all([
    runWithBadEnv(CLI, cases, CLI_ARGS), runWithBadEnv(CLI, [['KV_CACHE_PAGES', '100000000']], CLI_ARGS),
  ]);
  t.is(bad.code, 2, bad.stderr);
  for (const [i, [name, value]] of cases.entries()) t.truthy(bad.named[i], `${name}=${value} not named in:\n${bad.stderr}`);
  t.is(tooBig.code, 2, tooBig.stderr);
  t.regex(tooBig.named[0] ?? '', /does not fit this adapter/, tooBig.stderr);
});
