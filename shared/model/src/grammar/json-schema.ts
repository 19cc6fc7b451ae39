// A JSON schema subset → GrammarNode: objects (properties in the schema's order, `required`, no other keys —
// what `additionalProperties: false` asks and what strict mode implies), strings, numbers, integers,
// booleans, null, enum/const, arrays (items, minItems, maxItems), nested to any depth. Annotations (title,
// description, default, examples, $schema, $comment) are ignored. Any other keyword is refused with an
// error naming it and where it is, rather than generating output the schema might reject.
import { GrammarError, type GrammarNode, type GrammarSpec } from './spec.js';

const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$comment', '$id', 'deprecated', 'readOnly', 'writeOnly']);
const SUPPORTED = new Set(['type', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'items', 'minItems', 'maxItems']);
const TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);

export class UnsupportedSchemaError extends GrammarError {
  constructor(readonly feature: string, readonly at: string, detail?: string) {
    super(`unsupported JSON schema feature '${feature}' at ${at}${detail ? ` (${detail})` : ''}`);
    this.name = 'UnsupportedSchemaError';
  }
}

export interface SchemaOptions {
  /** OpenAI's strict: every object is closed (additionalProperties must be false or absent). */
  readonly strict?: boolean;
}

export function jsonSchemaGrammar(schema: unknown, opts: SchemaOptions = {}): GrammarSpec {
  return { root: schemaNode(schema, '#', opts, 0) };
}

/** json_object mode: any JSON object. */
export const JSON_OBJECT_GRAMMAR: GrammarSpec = { root: { t: 'anyobj' } };

function schemaNode(s: unknown, at: string, opts: SchemaOptions, depth: number): GrammarNode {
  if (depth > 32) throw new UnsupportedSchemaError('depth', at, 'nested deeper than 32');
  if (s === true) return { t: 'any' };
  if (!s || typeof s !== 'object' || Array.isArray(s)) throw new GrammarError(`schema at ${at} must be an object`);
  const o = s as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!SUPPORTED.has(k) && !ANNOTATIONS.has(k)) throw new UnsupportedSchemaError(k, at);
  if ('const' in o) return { t: 'lit', options: [JSON.stringify(o['const'])] };
  if ('enum' in o) {
    const e = o['enum'];
    if (!Array.isArray(e) || e.length === 0) throw new GrammarError(`'enum' at ${at} must be a non-empty array`);
    return { t: 'lit', options: [...new Set(e.map((v) => JSON.stringify(v)))] };
  }
  let type = o['type'];
  if (Array.isArray(type)) {
    if (type.length !== 1) throw new UnsupportedSchemaError('type', at, 'a list of several types');
    type = type[0];
  }
  if (type === undefined) type = 'properties' in o || 'required' in o ? 'object' : 'items' in o ? 'array' : undefined;
  if (type === undefined) {
    if (Object.keys(o).some((k) => SUPPORTED.has(k))) throw new UnsupportedSchemaError('type', at, 'missing');
    return { t: 'any' };
  }
  if (typeof type !== 'string' || !TYPES.has(type)) throw new GrammarError(`'type' at ${at} must be one of ${[...TYPES].join(', ')}`);
  const only = (allowed: string[]) => {
    for (const k of Object.keys(o)) if (SUPPORTED.has(k) && k !== 'type' && !allowed.includes(k)) throw new UnsupportedSchemaError(k, at, `with type ${type}`);
  };
  switch (type) {
    case 'string': only([]); return { t: 'str' };
    case 'number': only([]); return { t: 'num' };
    case 'integer': only([]); return { t: 'int' };
    case 'boolean': only([]); return { t: 'bool' };
    case 'null': only([]); return { t: 'null' };
    case 'array': {
      only(['items', 'minItems', 'maxItems']);
      const min = o['minItems'] ?? 0, max = o['maxItems'] ?? Infinity;
      if (typeof min !== 'number' || !Number.isInteger(min) || min < 0) throw new GrammarError(`'minItems' at ${at} must be a non-negative integer`);
      if (typeof max !== 'number' || !(max === Infinity || (Number.isInteger(max) && max >= min))) throw new GrammarError(`'maxItems' at ${at} must be an integer >= minItems`);
      if (min > 64) throw new UnsupportedSchemaError('minItems', at, 'above 64');
      const items = 'items' in o ? schemaNode(o['items'], `${at}/items`, opts, depth + 1) : { t: 'any' } as const;
      return { t: 'arr', items, ...(min > 0 ? { min } : {}), ...(max !== Infinity ? { max } : {}) };
    }
    case 'object': {
      only(['properties', 'required', 'additionalProperties']);
      const props = o['properties'] ?? {};
      if (!props || typeof props !== 'object' || Array.isArray(props)) throw new GrammarError(`'properties' at ${at} must be an object`);
      const required = o['required'] ?? [];
      if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw new GrammarError(`'required' at ${at} must be an array of strings`);
      const keys = Object.keys(props);
      for (const r of required as string[]) if (!keys.includes(r)) throw new UnsupportedSchemaError('required', at, `'${r}' is required but not among the properties`);
      const ap = o['additionalProperties'];
      if (ap !== undefined && typeof ap !== 'boolean') throw new UnsupportedSchemaError('additionalProperties', at, 'only true or false');
      if (opts.strict && ap === true) throw new UnsupportedSchemaError('additionalProperties', at, 'strict mode needs false');
      // no properties and open: any object; otherwise only the listed keys (valid either way)
      if (keys.length === 0 && ap !== false && !opts.strict) return { t: 'anyobj' };
      return {
        t: 'obj',
        props: keys.map((key) => ({
          key,
          node: schemaNode((props as Record<string, unknown>)[key], `${at}/properties/${key}`, opts, depth + 1),
          required: (required as string[]).includes(key),
        })),
      };
    }
  }
  throw new GrammarError(`unreachable type ${String(type)}`);
}
