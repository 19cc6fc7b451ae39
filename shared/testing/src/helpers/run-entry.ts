// Runs a built entry point (a service's main.js, the CLI) as its own process with extra environment
// variables, for tests of start-up refusals: exit code and stderr, killed after `timeoutMs`.
import { spawn } from 'node:child_process';

export interface EntryResult {
  /** Exit code; null when killed (timed out). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runEntry(file: string, env: Record<string, string>, args: readonly string[] = [], timeoutMs = 30_000): Promise<EntryResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs `file` once with every `[variable, value]` of `cases` set (the env parser reports every bad variable,
 * not only the first, so one process checks them all) and returns the result with the lines of stderr
 * that name each case as `NAME="value"` (undefined where none does).
 */
export async function runWithBadEnv(
  file: string, cases: readonly (readonly [string, string])[], args: readonly string[] = [],
): Promise<EntryResult & { readonly named: (string | undefined)[] }> {
  const r = await runEntry(file, Object.fromEntries(cases), args);
  const lines = r.stderr.split('\n');
  return { ...r, named: cases.map(([n, v]) => lines.find((l) => l.includes(`${n}=${JSON.stringify(v)}`))) };
}

/** A TCP port free right now on 127.0.0.1 (for a process the test starts). */
export { default as freePort } from 'get-port';

/** Polls `url` until `accept(status, body)` holds; resolves with every status seen on the way. */
export async function pollUntil(
  url: string, accept: (status: number, body: string) => boolean, timeoutMs: number, everyMs = 50,
): Promise<{ statuses: number[]; body: string }> {
  const statuses: number[] = [];
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url);
      const body = await r.text();
      statuses.push(r.status);
      if (accept(r.status, body)) return { statuses, body };
    } catch {
      statuses.push(0); // not listening yet
    }
    if (Date.now() > until) throw new Error(`${url}: no accepted answer within ${timeoutMs} ms (saw ${[...new Set(statuses)].join(', ')})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A built entry point started as its own process with extra env, for tests that talk to it while it runs. */
export function startEntry(file: string, env: Record<string, string>): {
  readonly child: import('node:child_process').ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
} {
  const child = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, exited, stderr: () => stderr };
}
