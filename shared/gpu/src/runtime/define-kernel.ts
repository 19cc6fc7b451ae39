// A kernel's compile-time variant as one typed object: only what changes the shader (dtype, dims, tile shape,
// workgroup size…), never sizes, which live in uniforms. The cache key is derived from the variant's fields in
// sorted order (undefined fields left out), so equal variants share one shader object, and with it one
// pipeline, however they were written and whatever runtime sizes their programs carry.
import type { KernelShader } from './program.js';

type Variant = Readonly<Record<string, unknown>>;

export type VariantShader<S extends KernelShader = KernelShader> = S & {
  /** `name{field:value,…}`, fields sorted: the variant's identity, for logs and tests. */
  readonly variantKey: string;
};

export function variantKey(name: string, variant: object): string {
  const v = variant as Variant;
  const fields = Object.keys(v).filter((k) => v[k] !== undefined).sort();
  return `${name}{${fields.map((k) => `${k}:${JSON.stringify(v[k])}`).join(',')}}`;
}

const LEAF = Symbol('shader');
type Node = Map<unknown, unknown>;

function child(node: Node, key: unknown): Node {
  let next = node.get(key) as Node | undefined;
  if (!next) {
    next = new Map();
    node.set(key, next);
  }
  return next;
}

/**
 * The memoized shader builder of kernel `name`: `build(variant)` runs once per variantKey, later calls return
 * the same object. Launchers call this per dispatch, so the lookup walks the fields as written through nested
 * maps (no string built for primitive fields; an object field is compared by its JSON) and
 * only a miss works out the sorted key, which joins differently ordered spellings of one variant.
 */
export function defineKernel<V extends object, S extends KernelShader>(name: string, build: (variant: V) => S): (variant: V) => VariantShader<S> {
  const root: Node = new Map();
  const byKey = new Map<string, VariantShader<S>>();
  return (variant) => {
    const v = variant as Variant;
    let node = root;
    for (const k in v) {
      const val = v[k];
      if (val === undefined) continue;
      node = child(child(node, k), val !== null && typeof val === 'object' ? `\u0000${JSON.stringify(val)}` : val);
    }
    let shader = node.get(LEAF) as VariantShader<S> | undefined;
    if (!shader) {
      const key = variantKey(name, variant);
      shader = byKey.get(key) ?? { ...build(variant), variantKey: key };
      byKey.set(key, shader);
      node.set(LEAF, shader);
    }
    return shader;
  };
}
