// Workgroup tree reductions of one f32 an invocation. The includer declares `const WG: u32` (its workgroup size,
// a power of two) and a `var<workgroup>` array<f32, WG> to reduce through; every invocation calls, in uniform
// control flow, with its value, and all get the result. The array is free again when the call returns (the
// last barrier), so one array serves reductions back to back.
export const wgReduce = /* wgsl */ `
fn wg_sum(red: ptr<workgroup, array<f32, WG>>, lid: u32, v: f32) -> f32 {
  (*red)[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { (*red)[lid] += (*red)[lid + s]; }
    workgroupBarrier();
  }
  let total = (*red)[0];
  workgroupBarrier();
  return total;
}
fn wg_max(red: ptr<workgroup, array<f32, WG>>, lid: u32, v: f32) -> f32 {
  (*red)[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { (*red)[lid] = max((*red)[lid], (*red)[lid + s]); }
    workgroupBarrier();
  }
  let top = (*red)[0];
  workgroupBarrier();
  return top;
}
`;
