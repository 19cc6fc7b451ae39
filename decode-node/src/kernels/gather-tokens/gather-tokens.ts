// The tokens a decode step feeds, assembled on the GPU: ids[i] = previous[from[i]] when from[i] names a row of
// the step still in flight (its sampled token, not yet read back: the overlapped engine submits step n+1
// before reading step n), else host[i] (a token the CPU knows: a prefill's first token).
import type { KernelProgram, KernelShader } from '@latentwire/gpu';
import { bindings } from '@latentwire/gpu';

const WG = 64;
const BINDINGS = bindings(
  [['host', 'array<u32>'], ['from_row', 'array<u32>'], ['previous', 'array<u32>'], ['ids', 'array<u32>', 'read_write']],
  { rows: 'u32' },
);
/** from[i] for "use host[i]". */
export const FROM_HOST = 0xffffffff;

export const gatherTokensShader: KernelShader = BINDINGS.shader('gather_tokens', /* wgsl */ `
${BINDINGS.wgsl}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= u.rows) { return; }
  let f = from_row[i];
  ids[i] = select(previous[f], host[i], f == ${FROM_HOST}u);
}
`);

export function gatherTokens(a: { host: GPUBuffer; from: GPUBuffer; previous: GPUBuffer; ids: GPUBuffer; rows: number }): KernelProgram {
  if (!Number.isInteger(a.rows) || a.rows < 1) throw new RangeError(`gatherTokens: rows ${a.rows}`);
  return { shader: gatherTokensShader, buffers: BINDINGS.buffers({ host: a.host, from_row: a.from, previous: a.previous, ids: a.ids }), uniformValues: { rows: a.rows }, workgroups: [Math.ceil(a.rows / WG)] };
}
