// Benchmark output: an aligned table on stdout and a JSON file under bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Row = Record<string, string | number>;

export function printTable(title: string, rows: Row[]): void {
  console.log(`\n${title}`);
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  // 4 significant digits, but never exponent notation for large values (12690, not 1.269e+4)
  const cell = (v: unknown) =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e4 ? v.toFixed(0) : v.toPrecision(4)) : String(v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => '| ' + vals.map((v, i) => v.padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(line(cols));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
}

/** Writes results to $BENCH_OUT or bench/results/<name>.json. */
export function writeJson(name: string, data: unknown): string {
  const dir = process.env.BENCH_OUT ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

export function isSoftwareAdapter(info: { vendor: string; architecture: string; device: string }): boolean {
  return /llvmpipe|lavapipe|swiftshader|software/i.test(`${info.vendor} ${info.architecture} ${info.device}`);
}

/** The machine's 1-minute load against its CPUs: CPU-bound numbers on a shared machine need it. */
export function loadNote(): string {
  return `load average ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} CPUs`;
}

/** Median with the smallest and largest sample. */
export function spread(xs: readonly number[]): { readonly median: number; readonly min: number; readonly max: number } {
  if (xs.length === 0) throw new RangeError('spread: no samples');
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

/** What a GPU result file names: the card, its driver, the commit and the date (BENCH_CARD/DRIVER/COMMIT override). */
export function runMeta(gpu: { readonly adapterInfo: { vendor: string; architecture: string; device: string; description: string } }): {
  readonly card: string; readonly driver: string; readonly commit: string; readonly date: string;
} {
  const a = gpu.adapterInfo;
  const device = `${a.vendor} ${a.architecture} ${a.device} ${a.description}`.replace(/\s+/g, ' ').trim();
  return {
    card: process.env.BENCH_CARD ?? device, driver: process.env.BENCH_DRIVER ?? a.description,
    commit: process.env.BENCH_COMMIT ?? 'unknown', date: new Date().toISOString(),
  };
}
