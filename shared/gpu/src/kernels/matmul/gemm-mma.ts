// The subgroup-matrix (tensor-core) GEMM: same arguments, uniforms and results as the f32 GEMM (gemm.ts), the
// products as f16 → f32 16×16×16 subgroup matrices. See gemm-mma.wgsl. The matmul launcher picks it for M past
// the GEMV range when the device can run it (MatmulLimits.subgroupMatrix) and rows load as 16-byte words.
import type { KernelShader } from '../../runtime/program.js';
import { fillWgsl, loadWgsl } from '../../runtime/wgsl-source.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { type WeightDtype } from '@latentwire/model';
import { GEMM_UNIFORMS, gemmBindings, unroll } from './common.js';
import { bindings } from '../../runtime/bindings.js';
import { pair16Wgsl, SUBGROUP_MATRIX_WGSL } from '../../runtime/matrix-caps.js';
import { stagingRowSpread, stagingRowWgsl } from './staging-rows.js';

const GEMM_MMA_WGSL = loadWgsl(new URL('./gemm-mma.wgsl', import.meta.url));

/** SGM × SGN subgroups of 32 over the block (default 2 × 2); each owns TM × TN result tiles of 16 × 16. */
export interface MmaTile {
  readonly BM: number;
  readonly BN: number;
  /** K per slab: a multiple of 16. */
  readonly BK: number;
  /** Slabs in workgroup memory (default 1): with 2, a trip stores the next while the current is multiplied. */
  readonly STAGES?: 1 | 2;
  /** Subgroups down the rows and across the columns (default 2 and 2). */
  readonly SGM?: number;
  readonly SGN?: number;
}

export const MMA_TILES = {
  /** 64 × 64 per subgroup: 16 accumulators. */
  m128x128: { BM: 128, BN: 128, BK: 32 },
  /** The same with half the slab in flight (fewer registers). */
  m128x128k16: { BM: 128, BN: 128, BK: 16 },
  /**
   * The same with 64-deep slabs: half the barriers a product (mma-peak.h100.txt: a barrier every two 16-deep
   * steps halves the products' rate), twice the registers in flight; 2.9–4.6× slower than 32-deep at the prefill
   * shapes on the H100 (matmul-k64.h100.txt), so only by mmaTile.
   */
  m128x128k64: { BM: 128, BN: 128, BK: 64 },
  /** The same with two slabs in workgroup memory: one barrier a trip instead of two. */
  m128x128s2: { BM: 128, BN: 128, BK: 32, STAGES: 2 },
  // 8 subgroups (256 invocations): each slab staged once serves twice the products of a 128 × 128 block's
  /** 64 × 64 per subgroup, 2 × 4 of them: 128 × 256 blocks. */
  m128x256: { BM: 128, BN: 256, BK: 32, SGM: 2, SGN: 4 },
  /** 64 × 64 per subgroup, 4 × 2 of them: 256 × 128 blocks. */
  m256x128: { BM: 256, BN: 128, BK: 32, SGM: 4, SGN: 2 },
  /** 32 × 64 per subgroup, 4 × 2 of them over a 128 × 128 block: twice the subgroups to hide latency, half the registers. */
  m128x128w8: { BM: 128, BN: 128, BK: 32, SGM: 4, SGN: 2 },
  /** 32 × 32 per subgroup: 4× the workgroups, for mid-size M or narrow N. */
  m64x64: { BM: 64, BN: 64, BK: 32 },
  /** The same with twice the K per slab: half the trips of the K loop, which bound decode-sized M. */
  m64x64k64: { BM: 64, BN: 64, BK: 64 },
  /** And 128-deep: a quarter of the trips, twice the registers in flight. */
  m64x64k128: { BM: 64, BN: 64, BK: 128 },
  // Narrower 128-deep tiles for decode batches, whose 64 × 64 tiles make only 9–48 workgroups at V2-Lite's
  // projections (half or a quarter of the work a workgroup, 2–4× the workgroups). 32 × 64 was the fastest of
  // them at M = 64 on the H200 and is the default's last resort (matmul.ts); the others only by mmaTile.
  m64x32k128: { BM: 64, BN: 32, BK: 128 },
  m32x64k128: { BM: 32, BN: 64, BK: 128 },
  m32x32k128: { BM: 32, BN: 32, BK: 128 },
} as const satisfies Record<string, MmaTile>;
export type MmaTileName = keyof typeof MMA_TILES;

const subgroupsOf = (t: MmaTile) => ({ SGM: t.SGM ?? 2, SGN: t.SGN ?? 2 });
/** Invocations of a tile's workgroup: 32 a subgroup. */
export function mmaWorkgroupSize(t: MmaTile): number {
  const { SGM, SGN } = subgroupsOf(t);
  return 32 * SGM * SGN;
}
/** x rows load as vec4 (the launcher requires it), weights as words. */
const MMA_BINDINGS = gemmBindings({ vecX: true, vecW: false });
/** With f16 activations: x as 4 f16 values a vec2<u32> (the same names and order). */
const MMA_X16_BINDINGS = bindings([['x', 'array<vec2<u32>>'], ['w', 'array<u32>'], ['y', 'array<f32>', 'read_write']], GEMM_UNIFORMS);

/** f16 row stride of a slab in workgroup memory: padded by 8 values, and 16-byte rows for the matrix loads. */
const strideOf = (t: MmaTile) => t.BK + 8;

export function mmaWorkgroupBytes(t: MmaTile): number {
  return 2 * (t.BM + t.BN) * strideOf(t) * (t.STAGES ?? 1) + 4 * 256 * (mmaWorkgroupSize(t) / 32);
}

function check(t: MmaTile): void {
  const { SGM, SGN } = subgroupsOf(t);
  if (t.BM % (16 * SGM) !== 0 || t.BN % (16 * SGN) !== 0 || t.BK % 16 !== 0 || t.BK < 16) {
    throw new RangeError(`matmul: bad subgroup-matrix tile ${JSON.stringify(t)} (BM, BN multiples of 16 a subgroup, BK of 16)`);
  }
}

/**
 * xF16: x holds f16 activations (4 a vec2<u32>), staged as they are: half the bytes of f32 x a slab and no
 * conversion, the same f16 operands as f32 x rounded by the staging.
 * groupRows: the blocks taken in groups of that many rows of blocks, down then across (grouped-order), so the
 * workgroups in flight share a few rows of x and a few blocks of W in the L2 cache; 0 (default): x fastest.
 * linearRows: a store instruction's lanes stage consecutive slab rows, instead of rows spread so that its phases fill
 * the banks (staging-rows.ts; the same slab either way, so the same results bit for bit).
 */
function build_gemmMmaShader({ dtype, tile, accumulate, xF16 = false, groupRows = 0, linearRows = false }: {
  readonly dtype: WeightDtype; readonly tile: MmaTile; readonly accumulate: boolean; readonly xF16?: boolean; readonly groupRows?: number;
  readonly linearRows?: boolean;
}): KernelShader {
  if (!Number.isInteger(groupRows) || groupRows < 0) throw new RangeError(`matmul: groupRows ${groupRows} (a whole number, 0 for none)`);
  const B = xF16 ? MMA_X16_BINDINGS : MMA_BINDINGS;
  const xReg = xF16 ? 'vec2<u32>' : 'vec4<f32>';
  check(tile);
  const { BM, BN, BK } = tile;
  const STR = strideOf(tile);
  const { SGM, SGN } = subgroupsOf(tile);
  const WG = mmaWorkgroupSize(tile);
  const TM = BM / (16 * SGM), TN = BN / (16 * SGN); // tiles of 16 per subgroup (each owns 1/SGM of the rows, 1/SGN of the columns)
  // weights move a 32-bit word a lane (2 bf16/f16 values, or 1 f32), neighbouring lanes along a row's K, so each
  // f16 store of a warp hits 32 distinct words; a lane converting 8 contiguous values (16-byte loads) made 4-way
  // bank conflicts on every store
  const vpw = dtype === 'f32' ? 1 : 2;
  const xVecs = (BM * BK) / 4, wWords = (BN * BK) / vpw;
  // the slab rows a lane stages: spread so that each store's phases fill the banks (staging-rows.ts)
  const dx = linearRows ? 1 : stagingRowSpread(BK, STR, 4, BM), dw = linearRows ? 1 : stagingRowSpread(BK, STR, vpw, BN);
  const NX = Math.ceil(xVecs / WG), NW = Math.ceil(wWords / WG);
  const guard = (total: number, j: number, body: string) => ((j + 1) * WG > total ? `if (lid + ${j * WG}u < ${total}u) { ${body} }` : body);
  const range = (n: number) => [...Array(n).keys()];

  const declare = [
    ...range(TM).flatMap((i) => range(TN).map((j) => `var acc_${i}_${j} = ResT();`)),
    ...range(NX).map((j) => `var rx_${j} = ${xReg}();\n  let xr_${j} = ${stagingRowWgsl(`(lid + ${j * WG}u) / ${BK / 4}u`, BK, 4, dx)};\n  let xk_${j} = ((lid + ${j * WG}u) % ${BK / 4}u) * 4u;`),
    ...range(NW).map((j) => `var rw_${j} = 0u;\n  let wr_${j} = ${stagingRowWgsl(`(lid + ${j * WG}u) / ${BK / vpw}u`, BK, vpw, dw)};\n  let wk_${j} = ((lid + ${j * WG}u) % ${BK / vpw}u) * ${vpw}u;`),
  ];
  const fetch = (k: string) => [
    ...range(NX).map((j) => guard(xVecs, j, `rx_${j} = ${xReg}();
    if (m0 + xr_${j} < u.M && ${k} + xk_${j} < ke) { rx_${j} = x[((m0 + xr_${j}) * u.x_stride + u.x_offset + ${k} + xk_${j}) >> 2u]; }`)),
    ...range(NW).map((j) => guard(wWords, j, `rw_${j} = 0u;
    if (n0 + wr_${j} < u.N && ${k} + wk_${j} < ke) { rw_${j} = w[((n0 + wr_${j}) * u.K + u.w_offset + ${k} + wk_${j})${vpw === 2 ? ' >> 1u' : ''}]; }`)),
  ];
  const store = (xBase: string, wBase: string) => [
    ...range(NX).map((j) => guard(xVecs, j, `let bx = ${xBase}xr_${j} * ${STR}u + xk_${j};
    ${xF16
      ? `let h01 = bitcast<vec2<f16>>(rx_${j}.x);\n    let h23 = bitcast<vec2<f16>>(rx_${j}.y);\n    xs[bx] = h01.x; xs[bx + 1u] = h01.y; xs[bx + 2u] = h23.x; xs[bx + 3u] = h23.y;`
      : unroll(4, (e) => `xs[bx + ${e}u] = f16(rx_${j}[${e}]);`)}`)),
    ...range(NW).map((j) => guard(wWords, j, `let bw = ${wBase}wr_${j} * ${STR}u + wk_${j};
    ${vpw === 2 ? `let v = w_pair16(rw_${j});\n    ws[bw] = v.x; ws[bw + 1u] = v.y;` : `ws[bw] = f16(bitcast<f32>(rw_${j}));`}`)),
  ];
  const multiply = (xBase: string, wBase: string) => range(BK / 16).map((kk) => [
    ...range(TM).map((i) => `let a_${i} = subgroupMatrixLoad<LeftT, row_major>(&xs, ${xBase}(sm + ${16 * i}u) * ${STR}u + ${16 * kk}u, ${STR}u);`),
    ...range(TN).map((j) => `let b_${j} = subgroupMatrixLoad<RightT, col_major>(&ws, ${wBase}(sn + ${16 * j}u) * ${STR}u + ${16 * kk}u, ${STR}u);`),
    ...range(TM).flatMap((i) => range(TN).map((j) => `acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(a_${i}, b_${j}, acc_${i}_${j});`)),
  ].join('\n      ')).map((body) => `{\n      ${body}\n    }`);
  const write = range(TM).flatMap((i) => range(TN).map((j) => `subgroupMatrixStore<row_major>(&out_tile, sg * 256u, acc_${i}_${j}, 16u);
  workgroupBarrier();
  for (var e = 0u; e < 8u; e++) {
    let idx = lane + 32u * e;
    let row = m0 + sm + ${16 * i}u + idx / 16u;
    let col = n0 + sn + ${16 * j}u + idx % 16u;
    if (row < u.M && col < u.N) {
      let yi = row * u.y_stride + u.y_offset + wg.z * u.split_stride + col;
      y[yi] = ${accumulate ? 'y[yi] + ' : ''}out_tile[sg * 256u + idx];
    }
  }
  workgroupBarrier();`));

  const STAGES = tile.STAGES ?? 1;
  const block = (parts: string[]) => parts.map((p) => `{\n    ${p}\n    }`).join('\n    ');
  // one slab: store, wait, multiply, (next trip) wait; two: the trip's slab was stored a trip ago into half
  // `cur`, the next one goes into the other half while this one is multiplied, one barrier between
  const loop = STAGES === 1
    ? `for (var k0 = kb; k0 < ke; k0 += BK) {
    workgroupBarrier();   // the previous slab's products are done with xs and ws
    ${block(store('', ''))}
    workgroupBarrier();
    let kn = k0 + BK;
    ${fetch('kn').join('\n    ')}
    ${multiply('', '').join('\n    ')}
  }`
    : `${block(store('', ''))}
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = kb; k0 < ke; k0 += BK) {
    let kn = k0 + BK;
    ${fetch('kn').join('\n    ')}
    let xo = cur * ${BM * STR}u;
    let wo = cur * ${BN * STR}u;
    ${multiply('xo + ', 'wo + ').join('\n    ')}
    if (kn < ke) {
      let xn = (1u - cur) * ${BM * STR}u;
      let wn = (1u - cur) * ${BN * STR}u;
      ${block(store('xn + ', 'wn + '))}
    }
    workgroupBarrier();   // the next slab is stored; this one's products are done before it is overwritten
    cur = 1u - cur;
  }`;
  const consts: Record<string, number> = { BM, BN, BK, STR, WG, STAGES, SGM, SGN, GROUP: groupRows };
  const placement = groupRows > 0
    ? `let blk = grouped_block(wg.x + wg.y * nwg.x, nwg.y, nwg.x, GROUP);
  let n0 = blk.y * BN;
  let m0 = blk.x * BM;`
    : `let n0 = wg.x * BN;
  let m0 = wg.y * BM;`;
  const source = `${SUBGROUP_MATRIX_WGSL}
${Object.entries(consts).map(([k, v]) => `const ${k}: u32 = ${v}u;`).join('\n')}
${B.wgsl}
${dtype === 'f32' ? '' : pair16Wgsl(dtype)}
${groupRows > 0 ? '//!include grouped-order' : ''}
${fillWgsl(GEMM_MMA_WGSL, {
    BLOCK: placement,
    DECLARE: declare.join('\n  '),
    FETCH: fetch('kb').join('\n  '),
    LOOP: loop,
    WRITE: write.join('\n  '),
  }, 'gemm-mma.wgsl')}`;
  const layout = SGM === 2 && SGN === 2 ? '' : `_sg${SGM}x${SGN}`;
  return B.shader(`matmul_gemm_mma_${dtype}${xF16 ? '_xf16' : ''}_${BM}x${BN}k${BK}${STAGES === 2 ? 's2' : ''}${layout}${groupRows > 0 ? `_g${groupRows}` : ''}${linearRows ? '_lin' : ''}${accumulate ? '_acc' : ''}`, source);
}

export const gemmMmaShader = defineKernel('matmul_gemm_mma', build_gemmMmaShader);
