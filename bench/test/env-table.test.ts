// The README's environment table is the one the schemas generate.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { README, envTable, withEnvTable } from '../env-table.js';

test('env table - the README section is generated from the schemas', (t) => {
  const readme = readFileSync(README, 'utf8');
  t.true(readme === withEnvTable(readme, envTable()), 'README.md\'s env table is stale: run `npm run build && npm run env-table -- --write`');
});
