// Shader builders run for every dispatch (a decode step encodes several hundred), and regenerating WGSL text each
// time costs string building, hashing in the pipeline cache and garbage. memoShader returns the same KernelShader
// object for the same arguments, so the runtime finds its pipeline by object identity.
//
// The lookup itself runs per dispatch too, so it walks one Map per argument instead of serializing the whole
// argument list: a primitive argument (number, string, boolean, undefined, null) is its own key, and only an
// object argument (a tile shape, an alignment record) is serialized, by itself. Arguments are equal when their
// primitives are (SameValueZero) and their objects serialize alike (JSON, as before).
import type { KernelShader } from './program.js';

const LEAF = Symbol('shader');
type Node = Map<unknown, Node | KernelShader>;

export function memoShader<F extends (...args: any[]) => KernelShader>(build: F): F {
  const root: Node = new Map();
  return ((...args: unknown[]) => {
    let node = root;
    // the argument count first, so f(a) and f(a, undefined) stay apart
    for (let i = -1; i < args.length; i++) {
      const a = i < 0 ? args.length : args[i];
      const key = a !== null && typeof a === 'object' ? `\u0000${JSON.stringify(a)}` : a;
      let next = node.get(key) as Node | undefined;
      if (!next) {
        next = new Map();
        node.set(key, next);
      }
      node = next;
    }
    let shader = node.get(LEAF) as KernelShader | undefined;
    if (!shader) {
      shader = build(...args);
      node.set(LEAF, shader);
    }
    return shader;
  }) as F;
}
