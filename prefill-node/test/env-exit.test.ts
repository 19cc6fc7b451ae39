// The prefill node process refuses each kind of bad value at start-up, before the GPU or any connection:
// exit 2 and the variable's name on stderr (one process: the parser reports every bad variable at once).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { runWithBadEnv } from '@latentwire/testing';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

test('env - each kind of bad value exits 2 naming the variable', async (t) => {
  const cases = [
    ['PREFILL_CONCURRENCY', 'two'], // not a number
    ['KV_ACK_TIMEOUT_MS', '0'], // out of range
    ['KV_SEND_WINDOW_BYTES', String(2 ** 32)], // a size beyond what the window counts
    ['ROPE_FREQ_PRECISION', 'bf16'], // not in the enum (the vocabulary is checkpoint | f32)
    ['LOG_LEVEL', 'loud'], // not in the enum
    ['NATS_URL', ','], // empty list
    ['NATS_SUBJECT_PREFIX', 'lw..x'], // not a subject prefix
  ] as const;
  const r = await runWithBadEnv(MAIN, cases);
  t.is(r.code, 2, r.stderr);
  for (const [i, [name, value]] of cases.entries()) t.truthy(r.named[i], `${name}=${value} not named in:\n${r.stderr}`);
});
