// Environment parsing: every knob an operator tunes is an env variable, parsed once at start into a frozen
// typed object. A bad value fails start-up with a ConfigError naming the variable and what it accepts; each
// process's entry point turns it into exit code 2 (EXIT_CONFIG).
//
// A schema is a record of zod types read from strings. Each carries its README text as zod metadata:
// `.describe(text)`, plus `shown` when the default is not a literal worth printing (a computed path, a host
// name). `node bench/dist/env-table.js` prints the README's table from these.
import { z } from 'zod';

/** The exit code of a process refused by its configuration (a bad or impossible value). */
export const EXIT_CONFIG = 2;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The variables at fault. */
  readonly variables: readonly string[];
  constructor(problems: readonly { readonly variable: string; readonly problem: string }[], options?: ErrorOptions) {
    super(`invalid environment:\n  ${problems.map((p) => p.problem).join('\n  ')}`, options);
    this.variables = Object.freeze(problems.map((p) => p.variable));
  }

  /** One variable's value refused: `NAME="value": why` (also for values only the device or model can refuse). */
  static of(variable: string, value: unknown, why: string, options?: ErrorOptions): ConfigError {
    return new ConfigError([{ variable, problem: `${variable}=${value === undefined ? '(unset)' : JSON.stringify(value)}: ${why}` }], options);
  }
}

export type EnvSchema = Record<string, z.ZodType>;
export type EnvOf<S extends EnvSchema> = { readonly [K in keyof S]: z.infer<S[K]> };

export function parseEnv<S extends EnvSchema>(schema: S, env: NodeJS.ProcessEnv = process.env): EnvOf<S> {
  const out: Record<string, unknown> = {};
  const problems: { variable: string; problem: string }[] = [];
  for (const [name, type] of Object.entries(schema)) {
    const raw = env[name];
    const r = type.safeParse(raw === '' ? undefined : raw);
    if (r.success) out[name] = r.data;
    else {
      const why = r.error.issues.map((i) => i.message).join('; ');
      problems.push({ variable: name, problem: `${name}=${shownValue(name, raw)}: ${why}` });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(out) as EnvOf<S>;
}

/** Variables whose value is a secret: never printed, not even when refused. */
export const SECRET_ENV: ReadonlySet<string> = new Set(['NATS_PASSWORD', 'NATS_TOKEN', 'NATS_NKEY_SEED']);

/** `url` with any password replaced by *** (nats://u:***@h:4222, redis://:***@h:6379); other text unchanged. */
export function redactUrl(url: string): string {
  return url.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/gi, '$1:***@');
}

/** A value as an error message shows it: secrets (SECRET_ENV) hidden, a URL's password masked. */
function shownValue(name: string, raw: string | undefined): string {
  if (raw === undefined) return '(unset)';
  return SECRET_ENV.has(name) ? '(hidden)' : JSON.stringify(redactUrl(raw));
}

/** The variables of `schema` named in `names`, for composing a service's schema from a shared one. */
export function pickEnv<S extends EnvSchema, K extends keyof S>(schema: S, ...names: K[]): Pick<S, K> {
  const out = {} as Pick<S, K>;
  for (const n of names) out[n] = schema[n];
  return out;
}

declare module 'zod' {
  interface GlobalMeta {
    /** The default as the README shows it, where the value itself is computed (a path, a host name). */
    shown?: string;
  }
}

/** A variable's README text and default, as the env table prints them. */
export function envDoc(type: z.ZodType): { readonly description: string | undefined; readonly shown: string } {
  const meta = type.meta();
  let shown = meta?.shown;
  if (shown === undefined) {
    const d = type instanceof z.ZodDefault ? (type.def.defaultValue as unknown) : undefined;
    shown = d === undefined ? '(none)' : Array.isArray(d) ? (d.length ? d.join(',') : '(none)') : typeof d === 'boolean' ? (d ? '1' : '0') : String(d);
  }
  return { description: meta?.description, shown };
}

/** Reusable variable types (all read from strings). */
export const env = {
  int: (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
    z
      .string()
      .regex(/^\d+$/, 'expected a whole number')
      .transform(Number)
      .pipe(z.number().int().min(min, `must be >= ${min}`).max(max, `must be <= ${max}`))
      .default(def),
  bool: (def: boolean) =>
    z
      .enum(['1', '0', 'true', 'false', 'yes', 'no'], { message: 'expected 1/0, true/false or yes/no' })
      .transform((v) => v === '1' || v === 'true' || v === 'yes')
      .default(def),
  str: (def: string) => z.string().min(1).default(def),
  optionalStr: () => z.string().min(1).optional(),
  /** Comma-separated; blanks dropped. `nonEmpty`: a value with no item is refused rather than read as []. */
  list: (def: string[], opts: { nonEmpty?: boolean } = {}) =>
    z
      .string()
      .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
      .refine((v) => !opts.nonEmpty || v.length > 0, 'expected at least one comma-separated item')
      .default(def),
  /** A string read by `read`, which throws on a value it refuses; `expected` says what it accepts. */
  mapped: <T>(def: T, read: (s: string) => T, expected: string) =>
    z
      .string()
      .transform((s, ctx) => {
        try {
          return read(s);
        } catch {
          ctx.addIssue({ code: 'custom', message: expected });
          return z.NEVER;
        }
      })
      .default(def as never) as unknown as z.ZodDefault<z.ZodType<T, string>>,
  oneOf: <T extends readonly [string, ...string[]]>(values: T, def: T[number]) =>
    z.enum(values, { message: `expected one of ${values.join(', ')}` }).default(def),
};
