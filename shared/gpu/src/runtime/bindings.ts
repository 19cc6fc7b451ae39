// The one owner of binding numbers. A launcher declares its storage buffers once, in order, with its uniform
// spec; this emits the WGSL declarations numbered 0..n-1 with the uniform struct after them, which is the order
// the runtime binds a program's buffers in. Launchers build `buffers` by name through the same object, so the
// WGSL and the buffer list cannot drift apart (the runtime also checks the count).
import { GpuError } from './errors.js';
import type { BindingAccess, BufferBinding, KernelShader } from './program.js';
import { uniformStructWgsl, type UniformSpec } from './uniforms.js';
import { resolveIncludes } from './wgsl-pieces/index.js';

/** One storage buffer: [name, WGSL type (`array<f32>`), access (default read)]. */
export type StorageDecl<N extends string = string> = readonly [name: N, type: string, access?: BindingAccess];

export type Bound = GPUBuffer | BufferBinding;

export interface Bindings<N extends string = string, S extends UniformSpec | undefined = UniformSpec | undefined> {
  /** Storage names in binding order. */
  readonly names: readonly N[];
  readonly uniforms: S;
  /** The declarations: storage at @binding(0..n-1), then the uniform struct `u` at @binding(n). */
  readonly wgsl: string;
  /**
   * The shader with these bindings (the runtime checks a program's buffer count against them), its
   * `//!include` lines replaced by the named WGSL pieces (wgsl-pieces/).
   */
  shader(label: string, source: string): KernelShader & { readonly uniforms: S; readonly bindings: readonly N[] };
  /** The program's buffers in binding order, from a record by name. */
  buffers(byName: { readonly [K in N]: Bound }): Bound[];
}

export function bindings<const N extends string, const S extends UniformSpec | undefined = undefined>(
  storage: readonly StorageDecl<N>[],
  uniforms?: S,
): Bindings<N, S> {
  const names = storage.map(([name]) => name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new Error(`bindings: storage '${dup}' is declared twice`);
  if (uniforms && names.includes('u' as N)) throw new Error(`bindings: 'u' is the uniform struct's name`);
  const decls = storage.map(([name, type, access = 'read'], i) => `@group(0) @binding(${i}) var<storage, ${access}> ${name}: ${type};\n`);
  const wgsl = decls.join('') + (uniforms ? uniformStructWgsl(uniforms, storage.length) : '');
  return {
    names,
    uniforms: uniforms as S,
    wgsl,
    shader: (label, source) => ({ label, source: resolveIncludes(source), uniforms: uniforms as S, bindings: names }),
    buffers: (byName) => buffersIn(names, byName),
  };
}

/**
 * A program's buffers for a shader whose bindings depend on its variant (the launcher names every buffer it
 * may bind, undefined where the variant has none); a declared buffer missing or a given one undeclared is an error.
 */
export function shaderBuffers(shader: KernelShader, byName: Readonly<Record<string, Bound | undefined>>): Bound[] {
  if (!shader.bindings) throw new Error(`kernel ${shader.label} does not declare its bindings`);
  for (const k in byName) {
    if (byName[k] !== undefined && !shader.bindings.includes(k)) throw new Error(`kernel ${shader.label}: no binding for buffer ${k}`);
  }
  return buffersIn(shader.bindings, byName);
}

// runs per dispatch: one pass, the error message only built on failure
function buffersIn(names: readonly string[], byName: Readonly<Record<string, Bound | undefined>>): Bound[] {
  const out = new Array<Bound>(names.length);
  for (let i = 0; i < names.length; i++) {
    const b = byName[names[i]!];
    if (b === undefined) throw new Error(`bindings: no buffer for ${names.filter((n) => byName[n] === undefined).join(', ')}`);
    out[i] = b;
  }
  return out;
}

/** `count` storage buffers named prefix0, prefix1, … (a page pool split over several buffers). */
export function numberedStorage(prefix: string, count: number, type: string, access: BindingAccess = 'read'): StorageDecl[] {
  return Array.from({ length: count }, (_, k): StorageDecl => [`${prefix}${k}`, type, access]);
}

/** The buffers of numberedStorage by name, for shaderBuffers. */
export function numberedBuffers(prefix: string, list: readonly Bound[]): Record<string, Bound> {
  return Object.fromEntries(list.map((b, k) => [`${prefix}${k}`, b]));
}

/** The runtime's check: a program binds exactly the buffers its shader declares. */
export function checkBufferCount(shader: KernelShader, count: number): void {
  if (shader.bindings && shader.bindings.length !== count) {
    throw new GpuError(`kernel ${shader.label}: ${count} buffers for ${shader.bindings.length} bindings (${shader.bindings.join(', ')})`);
  }
}
