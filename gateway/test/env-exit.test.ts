// The gateway process refuses each kind of bad value at start-up, before connecting anywhere: exit 2 and the
// variable's name on stderr (one process: the parser reports every bad variable at once).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { runWithBadEnv } from '@latentwire/testing';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

test('env - each kind of bad value exits 2 naming the variable', async (t) => {
  const cases = [
    ['GATEWAY_PORT', 'eighty'], // not a number
    ['ADMISSION_WAIT_MS', '-1'], // not a whole number
    ['PREFILL_ATTEMPTS', '1000'], // out of range
    ['LOG_LEVEL', 'loud'], // not in the enum
    ['NATS_URL', ' , '], // empty list
    ['REDIS_URL', 'http://127.0.0.1:6379'], // wrong scheme
    ['MODEL_DIR', '/nonexistent/model'], // not a model folder
  ] as const;
  const r = await runWithBadEnv(MAIN, cases);
  t.is(r.code, 2, r.stderr);
  for (const [i, [name, value]] of cases.entries()) t.truthy(r.named[i], `${name}=${value} not named in:\n${r.stderr}`);
});
