// The grouped order of a grid's blocks (the grouped-order WGSL piece, which the subgroup-matrix GEMM and the routed
// experts' tiles use): run on the GPU for every workgroup of a grid, each (row, column) block must come out once,
// each run of group × cols consecutive workgroups must stay within its group of rows, and inside a group the
// workgroups must go down its rows before moving one column across.
import test from 'ava';
import { bindings } from '../../src/runtime/bindings.js';
import { testGpu } from '../../src/testing.js';

const B = bindings([['out', 'array<u32>', 'read_write']]);

async function blocksOf(rows: number, cols: number, group: number): Promise<[number, number][]> {
  const gpu = await testGpu();
  const shader = B.shader(`grid_order_g${group}`, `${B.wgsl}
//!include grouped-order
@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let lin = wg.x + wg.y * nwg.x;
  let blk = grouped_block(lin, nwg.y, nwg.x, ${group}u);
  out[2u * lin] = blk.x;
  out[2u * lin + 1u] = blk.y;
}`);
  const out = gpu.buffer('out', rows * cols * 8);
  try {
    await gpu.run([{ shader, buffers: B.buffers({ out }), workgroups: [cols, rows] }]);
    const v = await gpu.readU32(out, 0, rows * cols * 2);
    return Array.from({ length: rows * cols }, (_, i) => [v[2 * i]!, v[2 * i + 1]!]);
  } finally {
    gpu.destroy(out);
  }
}

for (const [rows, cols, group] of [[7, 5, 3], [8, 16, 8], [1, 9, 4], [13, 1, 16], [5, 6, 1], [32, 43, 8], [33, 11, 12]] as const) {
  test(`grid order - ${rows} rows × ${cols} columns of blocks in groups of ${group} rows`, async (t) => {
    const got = await blocksOf(rows, cols, group);
    const seen = new Set(got.map(([r, c]) => r * cols + c));
    t.is(seen.size, rows * cols, 'every block once');
    t.true(got.every(([r, c]) => r < rows && c < cols), 'inside the grid');
    got.forEach(([r, c], lin) => {
      const first = Math.floor(lin / (group * cols)) * group;
      const last = Math.min(rows, first + group) - 1;
      t.true(r >= first && r <= last, `workgroup ${lin}: row ${r} in its group's rows ${first}..${last}`);
      const next = got[lin + 1];
      if (next === undefined || Math.floor((lin + 1) / (group * cols)) * group !== first) return;
      t.deepEqual(next, r < last ? [r + 1, c] : [first, c + 1], `workgroup ${lin + 1} goes down the group's rows, then across`);
    });
  });
}
