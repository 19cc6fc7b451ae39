// Whether a device can run the subgroup-matrix (tensor-core) kernel variants: every one of them is written for
// f16 → f32 16×16×16 tiles and subgroups of exactly 32 invocations (4 to a 128-thread workgroup), which is what
// NVIDIA's Vulkan driver offers through Dawn's `chromium-experimental-subgroup-matrix`. Other adapters (lavapipe
// in CI) keep the portable kernels.
export interface MatrixCapabilities {
  readonly features: ReadonlySet<string>;
  readonly subgroupMinSize?: number;
  readonly subgroupMaxSize?: number;
  readonly subgroupMatrixConfigs?: readonly {
    readonly componentType: string; readonly resultComponentType: string; readonly M: number; readonly N: number; readonly K: number;
  }[];
}

/** The subgroup size every subgroup-matrix variant is written for. */
export const MATRIX_SUBGROUP_SIZE = 32;

/** Why the device cannot run the subgroup-matrix variants, or null when it can. */
export function subgroupMatrixUnsupportedReason(c: MatrixCapabilities | undefined): string | null {
  if (!c) return 'no adapter capabilities given';
  for (const f of ['chromium-experimental-subgroup-matrix', 'shader-f16', 'subgroups']) {
    if (!c.features.has(f)) return `the device lacks ${f}`;
  }
  if (c.subgroupMinSize !== MATRIX_SUBGROUP_SIZE || c.subgroupMaxSize !== MATRIX_SUBGROUP_SIZE) {
    return `subgroups of ${c.subgroupMinSize}..${c.subgroupMaxSize}, not exactly ${MATRIX_SUBGROUP_SIZE}`;
  }
  const ok = (c.subgroupMatrixConfigs ?? []).some(
    (m) => m.componentType === 'f16' && m.resultComponentType === 'f32' && m.M === 16 && m.N === 16 && m.K === 16,
  );
  return ok ? null : `no f16 → f32 16×16×16 subgroup matrix config among ${JSON.stringify(c.subgroupMatrixConfigs ?? [])}`;
}

/**
 * What every subgroup-matrix kernel's WGSL starts with: the enables, the uniformity diagnostics turned off (matrix
 * offsets derived from the subgroup index are uniform per subgroup, which is what the hardware needs, but not
 * per workgroup as the analysis wants), and the f16 → f32 16×16×16 tile types LeftT, RightT and ResT.
 */
export const SUBGROUP_MATRIX_WGSL = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
diagnostic(off, subgroup_uniformity);
alias LeftT = subgroup_matrix_left<f16, 16, 16>;
alias RightT = subgroup_matrix_right<f16, 16, 16>;
alias ResT = subgroup_matrix_result<f32, 16, 16>;`;

/**
 * `fn <name>(v: <argType>) -> vec2<f16>`: two weights as loaded raw, as the matrices' f16 operands: a u32 of two
 * f16 as they are (a bitcast), of two bf16 through f32 (exact in f16 range), or (f32, argType vec2<u32>) two f32
 * converted. The subgroup-matrix kernels stage their weights with it.
 */
export function pair16Wgsl(dtype: 'bf16' | 'f16' | 'f32', name = 'w_pair16', argType = 'u32'): string {
  const body = dtype === 'bf16'
    ? 'vec2<f16>(bitcast<vec2<f32>>(vec2<u32>(v << 16u, v & 0xffff0000u)))'
    : dtype === 'f16' ? 'bitcast<vec2<f16>>(v)' : 'vec2<f16>(bitcast<vec2<f32>>(v))';
  return `fn ${name}(v: ${argType}) -> vec2<f16> { return ${body}; }`;
}
