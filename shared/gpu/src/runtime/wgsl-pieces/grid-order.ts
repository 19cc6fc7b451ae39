// The order a grid's workgroups take its output blocks in. Launched x fastest, the workgroups in flight at once
// sweep one row of blocks across every column, so each column's operand (a weight block) is read again for every
// row of blocks, from memory once all columns' operands outgrow the L2 cache. Taken in groups of `group` rows,
// down the group's rows first and then across, the workgroups in flight share a few rows' and a few columns'
// operands. (Triton's matmul tutorial calls this grouped ordering.)

/** Workgroup `lin` (x fastest) of a rows × cols grid of blocks → its (row, column) block in groups of `group` rows. */
export const groupedOrder = /* wgsl */ `
fn grouped_block(lin: u32, rows: u32, cols: u32, group: u32) -> vec2<u32> {
  let per_group = group * cols;
  let first = (lin / per_group) * group;
  let size = min(rows - first, group);
  let r = lin % per_group;
  return vec2<u32>(first + r % size, r / size);
}
`;
