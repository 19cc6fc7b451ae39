// A kernel's compile-time variant as one typed object: only what changes the shader (dtype, dims, tile shape,
// workgroup size…), never sizes, which live in uniforms. The cache key is derived from the variant's fields in
// sorted order (undefined fields left out), so equal variants share one shader object, and with it one
// pipeline, however they were written and whatever runtime sizes their programs carry.
import type { KernelShader } from './program.js';
import { memoShader } from './memo-shader.js';

/** Variant fields: primitives, or small records (a tile shape) compared by their JSON. */
type Variant = Readonly<Record<string, unknown>>;

export type VariantShader<S extends KernelShader = KernelShader> = S & {
  /** `name{field:value,…}`, fields sorted: the variant's identity, for logs and tests. */
  readonly variantKey: string;
};

/** The sorted defined field names of a variant: the key's shape. */
function fieldsOf(v: Variant): string[] {
  return Object.keys(v).filter((k) => v[k] !== undefined).sort();
}

export function variantKey(name: string, variant: object): string {
  const v = variant as Variant;
  return `${name}{${fieldsOf(v).map((k) => `${k}:${JSON.stringify(v[k])}`).join(',')}}`;
}

/**
 * The memoized shader builder of kernel `name`: `build(variant)` runs once per distinct variant, later calls
 * return the same object. Lookup walks the sorted fields' values (memoShader), without building a string.
 */
export function defineKernel<V extends object, S extends KernelShader>(name: string, build: (variant: V) => S): (variant: V) => VariantShader<S> {
  const byFields = memoShader((fields: string, ...values: unknown[]): VariantShader<S> => {
    const names = fields === '' ? [] : fields.split(',');
    const v = Object.fromEntries(names.map((k, i) => [k, values[i]])) as V;
    return { ...build(v), variantKey: variantKey(name, v) };
  });
  return (variant) => {
    const v = variant as Variant;
    const fields = fieldsOf(v);
    return byFields(fields.join(','), ...fields.map((k) => v[k]));
  };
}
