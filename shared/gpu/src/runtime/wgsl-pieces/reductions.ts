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

// In place over the includer's workgroup array: each of `groups` runs of `lanes` consecutive values (lanes a power
// of two) summed into the run's first, by a tree over halves (the order of wg_sum and the rms-norm kernel). Many
// short sums at once (a GEMV's outputs, several rows' squares). The includer declares TREE_N (the array's
// length) and TREE_WG (its workgroup size); every invocation calls in uniform control flow.
export const treeSumGroups = /* wgsl */ `
fn tree_sum_groups(a: ptr<workgroup, array<f32, TREE_N>>, groups: u32, lanes: u32, lid: u32) {
  for (var s = lanes / 2u; s > 0u; s >>= 1u) {
    for (var i = lid; i < groups * s; i += TREE_WG) {
      let g = i / s;
      let j = i % s;
      (*a)[g * lanes + j] += (*a)[g * lanes + j + s];
    }
    workgroupBarrier();
  }
}
`;

/**
 * `fn name(v: f32) -> f32`: v summed over each aligned run of `lanes` invocations of a subgroup by xor shuffles,
 * the additions of tree_sum_groups in its order (invocation j adds j + s, for s = lanes / 2 … 1), so the run's
 * first invocation holds the tree's sum bit for bit, with no workgroup memory and no barrier. The shader enables
 * subgroups and calls it in uniform control flow; lanes is a power of two dividing the subgroup size, and the
 * subgroups are runs of consecutive invocation indices (as on NVIDIA).
 */
export function lanesSumWgsl(name: string, lanes: number): string {
  if (!Number.isInteger(Math.log2(lanes)) || lanes < 1) throw new RangeError(`lanes_sum: ${lanes} lanes is not a power of two`);
  const steps: string[] = [];
  for (let s = lanes / 2; s >= 1; s /= 2) steps.push(`  x = x + subgroupShuffleXor(x, ${s}u);`);
  return `fn ${name}(v: f32) -> f32 {
  var x = v;
${steps.join('\n')}
  return x;
}
`;
}
