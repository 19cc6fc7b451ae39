// How every entry point (gateway, prefill node, decode node, CLI, benches) ends when start-up fails: a
// configuration problem (a bad or impossible value) exits EXIT_CONFIG with the variable's name and no stack;
// anything else exits 1 with the error's name.
import { ConfigError, EXIT_CONFIG } from './env.js';

/** Writes `err` to stderr as `<process>: <message>` and exits: EXIT_CONFIG for a ConfigError, 1 otherwise. */
export function failStart(processName: string, err: unknown): never {
  const config = err instanceof ConfigError;
  const text = config ? err.message : err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
  process.stderr.write(`${processName}: ${config ? '' : 'failed to start: '}${text}\n`);
  process.exit(config ? EXIT_CONFIG : 1);
}
