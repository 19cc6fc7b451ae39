// Environment parsing: every knob an operator tunes is an env variable, parsed once at start into a frozen
// typed object. A bad value fails start-up with an error naming the variable and what it accepts.
import { z } from 'zod';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type EnvSchema = Record<string, z.ZodType>;
export type EnvOf<S extends EnvSchema> = { readonly [K in keyof S]: z.infer<S[K]> };

export function parseEnv<S extends EnvSchema>(schema: S, env: NodeJS.ProcessEnv = process.env): EnvOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, type] of Object.entries(schema)) {
    const raw = env[name];
    const r = type.safeParse(raw === '' ? undefined : raw);
    if (r.success) out[name] = r.data;
    else problems.push(`${name}=${raw === undefined ? '(unset)' : JSON.stringify(raw)}: ${r.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (problems.length > 0) throw new ConfigError(`invalid environment:\n  ${problems.join('\n  ')}`);
  return Object.freeze(out) as EnvOf<S>;
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
  list: (def: string[]) =>
    z
      .string()
      .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
      .default(def),
  oneOf: <T extends readonly [string, ...string[]]>(values: T, def: T[number]) => z.enum(values).default(def),
};
