// RMSNorm's 1 / rms of a few rows at once, summed in the rms-norm kernel's order (128 lanes, each adding every
// 128th square of its row in turn, then a tree over the lanes), so that x·inv·w computed with it is bit for bit
// what rms-norm writes: the fused kernels (the decode GEMV's norm prologue, the MoE router's) normalize their
// input rows themselves instead of waiting for a norm dispatch. The includer declares RMS_ROWS (most rows),
// RMS_WG (its workgroup size) and `fn rms_x(row: u32, c: u32) -> f32` (element c of row `row`); every invocation
// calls rms_rows in uniform control flow, then reads rms_inv[row] (rows past `rows` hold 1 / sqrt(eps)). Its
// lanes are summed by tree-sum-groups, whose TREE_N and TREE_WG it declares for its own array. A lane issues 4
// loads at a time (a loop of one waited-on load a trip made the prologue a chain of 16 L2 round trips at K 2048).
import { sumSquaresWgsl } from './norm-walks.js';

export const rmsRows = /* wgsl */ `
const RMS_LANES: u32 = 128u;
const TREE_N: u32 = RMS_ROWS * RMS_LANES;
const TREE_WG: u32 = RMS_WG;
var<workgroup> rms_partial: array<f32, TREE_N>;
var<workgroup> rms_inv: array<f32, RMS_ROWS>;
fn rms_rows(lid: u32, rows: u32, cols: u32, eps: f32) {
  for (var i = lid; i < RMS_ROWS * RMS_LANES; i += RMS_WG) {
    let m = i / RMS_LANES;
    var sum = 0.0;
    if (m < rows) {
      ${sumSquaresWgsl({ acc: 'sum', first: 'i % RMS_LANES', stride: 'RMS_LANES', end: 'cols', load: (c) => `rms_x(m, ${c})` })}
    }
    rms_partial[i] = sum;
  }
  workgroupBarrier();
  tree_sum_groups(&rms_partial, RMS_ROWS, RMS_LANES, lid);
  if (lid < RMS_ROWS) { rms_inv[lid] = inverseSqrt(rms_partial[lid * RMS_LANES] / f32(cols) + eps); }
  workgroupBarrier();
}
`;
