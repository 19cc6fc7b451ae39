// The one place that packs kernel uniforms. Every field is a 4-byte scalar (u32, i32 or f32), so a WGSL
// struct of them has no padding except at its end (uniform buffers are sized to 16 bytes).

export type UniformType = 'u32' | 'i32' | 'f32';
export type UniformSpec = Readonly<Record<string, UniformType>>;
export type UniformValues<S extends UniformSpec> = { readonly [K in keyof S]: number };

/** WGSL declaration of the uniform struct, bound at @group(0) @binding(`binding`) as `u`. */
export function uniformStructWgsl(spec: UniformSpec, binding: number): string {
  const fields = Object.entries(spec).map(([name, type]) => `  ${name}: ${type},`).join('\n');
  return `struct Uniforms {\n${fields}\n};\n@group(0) @binding(${binding}) var<uniform> u: Uniforms;\n`;
}

/** A spec's fields in order and its byte size, worked out once per spec object (the runtime packs per dispatch). */
interface SpecLayout {
  readonly names: readonly string[];
  readonly types: readonly UniformType[];
  readonly bytes: number;
}
const layouts = new WeakMap<UniformSpec, SpecLayout>();

function layoutOf(spec: UniformSpec): SpecLayout {
  let l = layouts.get(spec);
  if (!l) {
    const names = Object.keys(spec);
    l = { names, types: names.map((n) => spec[n]!), bytes: Math.max(16, Math.ceil((names.length * 4) / 16) * 16) };
    layouts.set(spec, l);
  }
  return l;
}

export function uniformByteSize(spec: UniformSpec): number {
  return layoutOf(spec).bytes;
}

/** Packs values in the spec's field order; integers are range-checked so a bad size fails loudly. */
export function packUniforms<S extends UniformSpec>(spec: S, values: UniformValues<S>): ArrayBuffer {
  const buf = new ArrayBuffer(uniformByteSize(spec));
  packUniformsInto(spec, values, new DataView(buf), 0);
  return buf;
}

/** packUniforms, written at byte `offset` of `dv` (the runtime's staging buffer) instead of a new buffer. */
export function packUniformsInto<S extends UniformSpec>(spec: S, values: UniformValues<S>, dv: DataView, offset: number): void {
  const { names, types } = layoutOf(spec);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const v = values[name as keyof S];
    if (typeof v !== 'number' || Number.isNaN(v)) throw new RangeError(`uniform ${name} is ${v}`);
    const type = types[i];
    if (type === 'f32') dv.setFloat32(offset, v, true);
    else if (type === 'u32') {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`uniform ${name}: ${v} is not a u32`);
      dv.setUint32(offset, v, true);
    } else {
      if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new RangeError(`uniform ${name}: ${v} is not an i32`);
      dv.setInt32(offset, v, true);
    }
    offset += 4;
  }
}
