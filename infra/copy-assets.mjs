// Copies non-TypeScript sources that kernels load at run time (*.wgsl) from src/ to dist/src/, keeping paths.
import { cpSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.wgsl')) out.push(p);
  }
  return out;
}
for (const file of walk('src')) {
  const dest = join('dist', file);
  mkdirSync(dirname(dest), { recursive: true });
  cpSync(file, dest);
}
