// The subgroup-matrix (tensor-core) variant of MLA prefill attention: same arguments, uniforms, outputs and causal
// rule as the portable kernel (mla-prefill-attention.ts runs it when the device has subgroup matrices and the
// shapes allow); both products are 16×16×16 f16 → f32 matrix tiles. See mla-prefill-attention-mma.wgsl.
//
// Needs chromium-experimental-subgroup-matrix, shader-f16 and subgroups of exactly 32 (4 or 8 per workgroup),
// head dims nope and rope multiples of 4 with nope + rope and v multiples of 16, and every stride a
// multiple of 4 elements (rows are read as 16-byte words).
import type { KernelShader } from '../../runtime/program.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { MLA_PREFILL_MMA_BINDINGS as B } from './mla-prefill-bindings.js';
import { fillWgsl, loadWgsl } from '../../runtime/wgsl-source.js';
import type { MlaHeadDims } from './mla-prefill-attention.js';
import { SUBGROUP_MATRIX_WGSL } from '../../runtime/matrix-caps.js';

const MMA_WGSL = loadWgsl(new URL('./mla-prefill-attention-mma.wgsl', import.meta.url));

/** 16 query rows a subgroup of 32, 32 keys a tile; a workgroup takes 64 rows (4 subgroups) or 128 (8). */
export const MLA_PREFILL_MMA = { keys: 32 } as const;
export type MlaPrefillMmaRows = 64 | 128;
/**
 * Rows a workgroup takes by default (PREFILL_ATTENTION_ROWS): 128, where the device holds its workgroups. On the
 * H200 (12-06, 9e08d9d, bench/results/prefill-attention-rows.h200.txt) the V2-Lite prefill of 4096 tokens took
 * 222.2 / 222.3 ms against 236.0 / 235.5 with 64 rows, alternating in one call; the kernel 28.6 ms a prefill
 * against 40.8 (per-kernel timestamps): each K/V tile staged once for twice the products.
 */
export const DEFAULT_MLA_PREFILL_MMA_ROWS: MlaPrefillMmaRows = 128;
/** Invocations of the variant's workgroup. */
export const mlaPrefillMmaWorkgroupSize = (rows: MlaPrefillMmaRows) => 2 * rows;

/** Why these head dims cannot run on the subgroup-matrix variant, or null when they can. */
export function mlaPrefillMmaUnfitReason(d: MlaHeadDims): string | null {
  if (d.nope % 4 !== 0 || d.rope % 4 !== 0) return `nope ${d.nope} and rope ${d.rope} must be multiples of 4`;
  if ((d.nope + d.rope) % 16 !== 0 || d.v % 16 !== 0) return `nope + rope ${d.nope + d.rope} and v ${d.v} must be multiples of 16`;
  return null;
}

// hs holds the K and V tiles, then the probabilities (PO on); q is staged at the start 64 rows at a time over both
// (each subgroup takes its rows into registers before the K loop's first barrier)
const strides = (d: MlaHeadDims, BQ: MlaPrefillMmaRows) => {
  const BK = MLA_PREFILL_MMA.keys;
  const KSTR = d.nope + d.rope + 8, VSTR = d.v + 8, PSTR = BK + 8; // padded by 8 f16: rows start on other banks
  const VO = BK * KSTR;
  const PO = VO + BK * VSTR;
  const HS = Math.ceil(Math.max(PO + BQ * PSTR, 64 * KSTR) / 8) * 8; // 16-byte multiple
  return { KSTR, VSTR, PSTR, KO: 0, VO, PO, HS };
};

/** Workgroup memory of the variant, in bytes (hs, sp and the flag words). */
export function mlaPrefillMmaWorkgroupBytes(d: MlaHeadDims, rows: MlaPrefillMmaRows = DEFAULT_MLA_PREFILL_MMA_ROWS): number {
  const nsg = rows / 16;
  return 2 * strides(d, rows).HS + 4 * nsg * SP_STRIDE + 4 * nsg + 16;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * A subgroup's f32 scratch in sp: its scores, [key][row] col-major, the second 16-key tile 16 floats past the first
 * one's 256 (SCORE_TILE apart), so that the softmax's two half-warps, one 16-key tile each (32-key tiles:
 * MLA_PREFILL_MMA.keys), read distinct banks; in a rescale and at the end, two accumulator tiles at 0 and 256.
 */
const SCORE_TILE = 256 + 16;
const SP_STRIDE = 16 * MLA_PREFILL_MMA.keys + 16;

/** The unrolled parts: q tiles and accumulators are named registers. */
function hotLoops(d: MlaHeadDims, NCH: number, BQ: MlaPrefillMmaRows): Record<string, string> {
  const WG = mlaPrefillMmaWorkgroupSize(BQ), BK = MLA_PREFILL_MMA.keys;
  const KT = (d.nope + d.rope) / 16, NV = d.v / 16, JT = BK / 16;
  const fetch = (k0: string) => range(NCH).map((c) => `pre_${c} = fetch_chunk(lid + ${c * WG}u, ${k0}, h, key_end);`);
  const scores = [
    ...range(JT).map((j) => `var s_${j} = ResT();`),
    ...range(KT).flatMap((k) => range(JT).map((j) =>
      `s_${j} = subgroupMatrixMultiplyAccumulate(q_${k}, subgroupMatrixLoad<RightT, col_major>(&hs, KO + ${16 * j}u * KSTR + ${16 * k}u, KSTR), s_${j});`)),
    // col-major: score (row r, key c) at c·16 + r; the second tile SCORE_TILE past the first, so the half-warps' reads of
    // keys i and 16 + i fall on distinct banks
    ...range(JT).map((j) => `subgroupMatrixStore<col_major>(&sp, sg * SPS + ${SCORE_TILE * j}u, s_${j}, 16u);`),
  ];
  // lanes r and r + 16 own row r, half `half` of the tile's keys: half·16 + i (one 16-key score tile each)
  const keys = range(BK / 2);
  const softmax = [
    ...keys.flatMap((i) => [
      `let key_${i} = k0 + half * ${BK / 2}u + ${i}u;`,
      `let ok_${i} = key_${i} <= row_pos && key_${i} < key_end;`,
      `let x_${i} = select(MASKED, sp[sg * SPS + half * ${SCORE_TILE}u + ${16 * i}u + r], ok_${i});`,
    ]),
    `var mt = ${keys.map((i) => `x_${i}`).reduce((a, b) => `max(${a}, ${b})`)};`,
    `mt = max(mt, subgroupShuffleXor(mt, 16u));`,
    `var m_use = m_run;`,
    `alpha = 1.0;`,
    // no key seen yet (the accumulators are still 0): take this tile's max; else move only past TAU
    `if (m_run == MASKED) { m_use = mt; } else if (mt > m_run + TAU) { m_use = mt; alpha = exp2(m_run - mt); }`,
    ...keys.map((i) => `let p_${i} = select(0.0, exp2(x_${i} - m_use), ok_${i});`),
    `l_run = l_run * alpha + ${keys.map((i) => `p_${i}`).join(' + ')};`,
    `m_run = m_use;`,
    // a lane's 16 weights are neighbours in its row of P: 32 contiguous bytes
    ...keys.map((i) => `hs[PO + (sg * 16u + r) * PSTR + half * ${BK / 2}u + ${i}u] = f16(p_${i});`),
    `let moved = subgroupAny(alpha != 1.0);`,
    `if (lane == 0u) { resc[sg] = select(0u, 1u, moved); }`,
  ];
  // accumulators leave and return through this subgroup's part of sp, two tiles a round
  const rounds = range(Math.ceil(NV / 2)).map((k) => range(Math.min(2, NV - 2 * k)).map((i) => 2 * k + i));
  const rescale = rounds.flatMap((ks) => [
    ...ks.map((n, i) => `subgroupMatrixStore<col_major>(&sp, sg * SPS + ${256 * i}u, o_${n}, 16u);`),
    `workgroupBarrier();`,
    `for (var e = 0u; e < ${8 * ks.length}u; e++) { sp[sg * SPS + (2u * e + half) * 16u + r] *= alpha; }`,
    `workgroupBarrier();`,
    ...ks.map((n, i) => `o_${n} = subgroupMatrixLoad<ResT, col_major>(&sp, sg * SPS + ${256 * i}u, 16u);`),
    `workgroupBarrier();`,
  ]);
  const pv = range(JT).flatMap((k) => [
    `{`,
    `  let p = subgroupMatrixLoad<LeftT, row_major>(&hs, PO + sg * 16u * PSTR + ${16 * k}u, PSTR);`,
    ...range(NV).map((n) => `  o_${n} = subgroupMatrixMultiplyAccumulate(p, subgroupMatrixLoad<RightT, row_major>(&hs, VO + ${16 * k}u * VSTR + ${16 * n}u, VSTR), o_${n});`),
    `}`,
  ]);
  const write = [
    `workgroupBarrier();`,
    ...rounds.flatMap((ks) => [
      ...ks.map((n, i) => `subgroupMatrixStore<row_major>(&sp, sg * SPS + ${256 * i}u, o_${n}, 16u);`),
      `workgroupBarrier();`,
      `for (var e = 0u; e < ${8 * ks.length}u; e++) {`,
      `  let idx = lane + 32u * e;`,
      `  let rr = (idx % 256u) / 16u;`,
      `  let scale = subgroupShuffle(inv, rr);`,
      `  let row = q0 + sg * 16u + rr;`,
      `  if (row < u.q_len) {`,
      `    out[row * u.out_row_stride + h * u.out_head_stride + (${ks[0]!}u + idx / 256u) * 16u + idx % 16u] = sp[sg * SPS + idx] * scale;`,
      `  }`,
      `}`,
      `workgroupBarrier();`,
    ]),
  ];
  // q 64 rows at a time: staged, then taken into registers by the 4 subgroups that own them
  const qLoad = (at: string) => range(KT).map((k) => `q_${k} = subgroupMatrixLoad<LeftT, row_major>(&hs, ${at} + ${16 * k}u, KSTR);`);
  const qParts = BQ === 64
    ? ['stage_q(lid, q0, 0u, h);', 'workgroupBarrier();', ...qLoad('sg * 16u * KSTR').map((l) => `let ${l}`)]
    : [
      ...range(KT).map((k) => `var q_${k} = LeftT();`),
      ...range(BQ / 64).flatMap((c) => [
        ...(c > 0 ? ['workgroupBarrier();   // the previous rows are in their registers'] : []),
        `stage_q(lid, q0, ${64 * c}u, h);`,
        'workgroupBarrier();',
        `if (sg / 4u == ${c}u) {`,
        ...qLoad('(sg % 4u) * 16u * KSTR').map((l) => `  ${l}`),
        '}',
      ]),
    ];
  return {
    Q_LOAD: qParts.join('\n  '),
    ACC_INIT: [...range(NV).map((n) => `var o_${n} = ResT();`), ...range(NCH).map((c) => `var pre_${c} = vec4<f16>();`)].join('\n  '),
    FETCH_FIRST: fetch('0u').join('\n  '),
    STORE: range(NCH).map((c) => `store_chunk(lid + ${c * WG}u, pre_${c});`).join('\n    '),
    FETCH_NEXT: fetch('k0 + BK').join('\n    '),
    SCORES: scores.join('\n    '),
    SOFTMAX: softmax.join('\n    '),
    RESCALE: rescale.join('\n      '),
    PV: pv.join('\n    '),
    WRITE: write.join('\n  '),
  };
}

function build_mlaPrefillMmaShader({ dims: d, rows: BQ = DEFAULT_MLA_PREFILL_MMA_ROWS }: { readonly dims: MlaHeadDims; readonly rows?: MlaPrefillMmaRows }): KernelShader & { readonly uniforms: typeof B.uniforms } {
  const why = mlaPrefillMmaUnfitReason(d);
  if (why) throw new RangeError(`mlaPrefillAttention (subgroup-matrix): ${why}`);
  if (BQ !== 64 && BQ !== 128) throw new RangeError(`mlaPrefillAttention (subgroup-matrix): rows ${String(BQ)} (64 or 128)`);
  const { keys: BK } = MLA_PREFILL_MMA;
  const WG = mlaPrefillMmaWorkgroupSize(BQ);
  const s = strides(d, BQ);
  const K4 = (d.nope + d.rope) / 4, V4 = d.v / 4;
  const NCH = Math.ceil((BK * (K4 + V4)) / WG);
  const consts: Record<string, number> = {
    NOPE: d.nope, DQK: d.nope + d.rope, DV: d.v, BQ, BK, WG, NSG: BQ / 16, ...s, K4, NOPE4: d.nope / 4, V4, NCH, SPS: SP_STRIDE,
  };
  return B.shader(`mla_prefill_attention_mma_n${d.nope}_r${d.rope}_v${d.v}_q${BQ}_k${BK}`, `${SUBGROUP_MATRIX_WGSL}
${Object.entries(consts).map(([k, v]) => `const ${k}: u32 = ${v}u;`).join('\n')}
${B.wgsl}${fillWgsl(MMA_WGSL, hotLoops(d, NCH, BQ), 'mla-prefill-attention-mma.wgsl')}`);
}

export const mlaPrefillMmaShader = defineKernel('mla_prefill_attention_mma', build_mlaPrefillMmaShader);
