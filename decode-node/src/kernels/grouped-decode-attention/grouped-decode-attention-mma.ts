// The subgroup-matrix (tensor-core) variant of grouped decode attention: same inputs, outputs, grid, scratch and
// merge as the portable kernel (grouped-decode-attention.ts runs it when variant.engine is 'subgroup-matrix');
// the products are 16×16×16 f16 → f32 subgroup matrices. See grouped-decode-attention-mma.wgsl.
//
// Needs the device features chromium-experimental-subgroup-matrix, shader-f16 and subgroups, a 16×16×16
// f16 → f32 matrix config, subgroups of exactly 32 (4 per workgroup of 128), r a multiple of 64 and rope of 16.
//
// Status (H200, driver 580.159.04): matches float64 within 1.5e-4..7.4e-4 and the portable kernel on every
// dtype (bench/results/decode-attention-mma-test.h200.log). Every workgroup variable is a multiple of 16 bytes:
// with a 4-byte flag among them the f16 tile could start misaligned, and matrix loads from it then read shifted
// rows (scores of the next token) while scalar reads of the same array were right. Error grows with |score|
// (q is rounded to f16 before the product): 9.5e-3 where rows grow 7× over the sequence (the ramp test).
import type { KernelShader } from '@latentwire/gpu';
import { SUBGROUP_MATRIX_WGSL, fillWgsl, loadWgsl, memoShader, uniformStructWgsl } from '@latentwire/gpu';
import { latentKvLayout, type KvDtype, type KvElementType, type LatentKvLayout } from '@latentwire/protocol';
import { chunkWords, fetchChunkWgsl, poolWordsWgsl } from './page-words-wgsl.js';

const MMA_WGSL = loadWgsl(new URL('./grouped-decode-attention-mma.wgsl', import.meta.url));

export const MMA_UNIFORMS = { heads: 'u32', num_splits: 'u32', pages_per_buffer: 'u32', scale_log2e: 'f32' } as const;

/** Fixed shape of the variant: 4 subgroups of 32, 16 tokens a tile, 16 rows (heads) a group at most. */
export const MMA = { subgroupSize: 32, subgroups: 4, workgroupSize: 128, tileTokens: 16, maxHeadGroup: 16 } as const;

export type { MatrixCapabilities } from '@latentwire/gpu';
/** Why the device cannot run the variant, or null when it can: the requirements every subgroup-matrix kernel shares. */
export { subgroupMatrixUnsupportedReason as mmaUnsupportedReason } from '@latentwire/gpu';

export interface MmaShape {
  readonly kvLoraRank: number; readonly ropeDim: number; readonly dtype: KvDtype; readonly pageSize: number;
  readonly headGroup: number; readonly poolBindings: number;
}

function check(v: MmaShape): void {
  const fail = (msg: string): never => {
    throw new RangeError(`groupedDecodeAttention (subgroup-matrix): ${msg} (variant ${JSON.stringify(v)})`);
  };
  if (!Number.isInteger(v.kvLoraRank) || v.kvLoraRank < 64 || v.kvLoraRank % 64 !== 0) fail('kvLoraRank must be a multiple of 64');
  if (!Number.isInteger(v.ropeDim) || v.ropeDim < 16 || v.ropeDim % 16 !== 0) fail('ropeDim must be a positive multiple of 16');
  if (!Number.isInteger(v.headGroup) || v.headGroup < 1 || v.headGroup > MMA.maxHeadGroup) fail(`headGroup must be 1..${MMA.maxHeadGroup}`);
}

/** f16 row stride in workgroup memory: the row padded by 8 values so the 16 rows of a tile start on different banks. */
const kstr = (v: MmaShape) => v.kvLoraRank + v.ropeDim + 8;
const PSTR = MMA.tileTokens + 8;

export function groupedDecodeMmaWorkgroupBytes(v: MmaShape): number {
  check(v);
  const BT = MMA.tileTokens;
  return 2 * 16 * kstr(v) + 2 * BT * kstr(v) + 4 * 8 * 256 + 2 * 16 * PSTR + 4 * BT + 4 * 16 + 4 * 16 + 16;
}

/** WGSL turning a chunk's raw words into 4 f16 (e4m3: the value · 2^-8, bit-exact; see the .wgsl header). */
function decode16(type: KvElementType, raw: string): string {
  switch (type) {
    case 'f32':
      return `vec4<f16>(bitcast<vec4<f32>>(${raw}))`;
    case 'bf16':
      return `vec4<f16>(bitcast<vec4<f32>>(vec4<u32>(${raw}.x << 16u, ${raw}.x & 0xffff0000u, ${raw}.y << 16u, ${raw}.y & 0xffff0000u)))`;
    case 'fp8_e5m2':
      return `vec4<f16>(bitcast<vec2<f16>>(((${raw}.x & 0xffu) << 8u) | ((${raw}.x & 0xff00u) << 16u)), bitcast<vec2<f16>>(((${raw}.x >> 8u) & 0xff00u) | (${raw}.x & 0xff000000u)))`;
    case 'fp8_e4m3':
      return `vec4<f16>(bitcast<vec2<f16>>(e4m3_pair16(${raw}.x)), bitcast<vec2<f16>>(e4m3_pair16(${raw}.x >> 16u)))`;
  }
}

function pageWgsl(l: LatentKvLayout, pools: number): string {
  const { cw: poolSelect, locate } = poolWordsWgsl(pools);
  const scale =
    l.scales.kind === 'none'
      ? `fn fetch_scale(b: u32, pt0: u32, tok: u32) -> f32 { return 1.0; }`
      : `fn fetch_scale(b: u32, pt0: u32, tok: u32) -> f32 {
  let page = page_table[pt0 + tok / PAGE_SIZE];
  ${locate}
  return bitcast<f32>(cw(pool, index * PAGE_WORDS + SCALES_WORD + tok % PAGE_SIZE));
}`;
  return `${poolSelect}
// raw words of values 4c..4c+3 of token tok's row (latent c < R4, then rope); e4m3 latent: 4 codes in .x
fn fetch_chunk(b: u32, pt0: u32, tok: u32, c: u32) -> vec4<u32> {
  let page = page_table[pt0 + tok / PAGE_SIZE];
  ${locate}
  let row = index * PAGE_WORDS + (tok % PAGE_SIZE) * ROW_WORDS;
  if (c < R4) {
    return ${fetchChunkWgsl(l.latentType, `row + c * ${chunkWords(l.latentType)}u`)};
  }
  return ${fetchChunkWgsl(l.ropeType, `row + LATENT_WORDS + (c - R4) * ${chunkWords(l.ropeType)}u`)};
}
${scale}
// two e4m3 codes (low 16 bits of w) → two f16 holding value·2^-8: sign to bit 15, exponent+mantissa shifted by 7
fn e4m3_pair16(w: u32) -> u32 {
  return ((w & 0x7fu) << 7u) | ((w & 0x80u) << 8u) | ((w & 0x7f00u) << 15u) | ((w & 0x8000u) << 16u);
}
fn decode16(raw: vec4<u32>, c: u32) -> vec4<f16> {
  if (c < R4) {
    return ${decode16(l.latentType, 'raw')};
  }
  return ${decode16(l.ropeType, 'raw')};
}`;
}

/** The unrolled parts: accumulators are named registers, one per output column tile of this subgroup. */
function hotLoops(v: MmaShape, NACC: number, NCH: number, scaled: boolean): Record<string, string> {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const WG = MMA.workgroupSize;
  const fetch = (tb: string) => [
    ...range(NCH).flatMap((k) => [
      `raw_${k} = vec4<u32>(0u);`,
      `if (lid + ${k * WG}u < BT * K4 && ${tb} + (lid + ${k * WG}u) / K4 < t_end) {`,
      `  raw_${k} = fetch_chunk(b, pt0, ${tb} + (lid + ${k * WG}u) / K4, (lid + ${k * WG}u) % K4);`,
      `}`,
    ]),
    ...(scaled ? [`raw_s = 0.0;`, `if (lid < BT && ${tb} + lid < t_end) { raw_s = fetch_scale(b, pt0, ${tb} + lid); }`] : []),
  ];
  const store = [
    ...range(NCH).flatMap((k) => [
      `if (lid + ${k * WG}u < BT * K4) {`,
      `  let i = lid + ${k * WG}u;`,
      `  let v = decode16(raw_${k}, i % K4);`,
      `  let o = (i / K4) * KSTR + (i % K4) * 4u;`,
      `  hs[KO + o] = v.x; hs[KO + o + 1u] = v.y; hs[KO + o + 2u] = v.z; hs[KO + o + 3u] = v.w;`,
      `}`,
    ]),
    `if (lid < BT) { tok_scale[lid] = ${scaled ? 'raw_s * 256.0' : '1.0'}; }`,
  ];
  const TPT = MMA.tileTokens / 8;
  const toks = range(TPT);
  const softmax = [
    ...toks.flatMap((tt) => [
      `var x_${tt} = MASKED;`,
      `{`,
      `  let t = hj + ${tt * 8}u;`,
      `  var la = 0.0;`,
      `  var pe = 0.0;`,
      `  for (var s = 0u; s < 4u; s++) { la += sp[s * 512u + hrow * 16u + t]; pe += sp[s * 512u + 256u + hrow * 16u + t]; }`,
      `  if (t0 + t < t_end) { x_${tt} = la * tok_scale[t] + pe; }`,
      `}`,
    ]),
    `var mt = ${toks.map((tt) => `x_${tt}`).reduce((a, b) => `max(${a}, ${b})`)};`,
    ...[1, 2, 4].map((m) => `mt = max(mt, subgroupShuffleXor(mt, ${m}u));`),
    `var m_use = m_run;`,
    `var alpha = 1.0;`,
    `if (l_run == 0.0) { m_use = mt; } else if (mt > m_run + TAU) { m_use = mt; alpha = exp2(m_run - mt); }`,
    ...toks.map((tt) => `let p_${tt} = select(0.0, exp2(x_${tt} - m_use), t0 + hj + ${tt * 8}u < t_end);`),
    `var psum = ${toks.map((tt) => `p_${tt}`).join(' + ')};`,
    ...[1, 2, 4].map((m) => `psum += subgroupShuffleXor(psum, ${m}u);`),
    `l_run = l_run * alpha + psum;`,
    `m_run = m_use;`,
    ...toks.map((tt) => `hs[PO + hrow * PSTR + hj + ${tt * 8}u] = f16(p_${tt} * tok_scale[hj + ${tt * 8}u] * inv_sigma);`),
    `if (hj == 0u) { alph[hrow] = alpha; rflag[hrow] = select(0u, 1u, alpha != 1.0); }`,
  ];
  // rounds of two accumulators through this subgroup's 512 floats of sp
  const rounds = range(Math.ceil(NACC / 2)).map((r) => range(Math.min(2, NACC - 2 * r)).map((i) => 2 * r + i));
  const rescale = rounds.flatMap((ks) => [
    ...ks.map((k, i) => `subgroupMatrixStore<row_major>(&sp, sg * 512u + ${256 * i}u, acc_${k}, 16u);`),
    `workgroupBarrier();`,
    `for (var i = lid % 32u; i < ${256 * ks.length}u; i += 32u) { sp[sg * 512u + i] *= alph[(i % 256u) / 16u]; }`,
    `workgroupBarrier();`,
    ...ks.map((k, i) => `acc_${k} = subgroupMatrixLoad<ResT, row_major>(&sp, sg * 512u + ${256 * i}u, 16u);`),
    `workgroupBarrier();`,
  ]);
  const pv = [
    `let pl = subgroupMatrixLoad<LeftT, row_major>(&hs, PO, PSTR);`,
    ...range(NACC).map(
      (k) => `acc_${k} = subgroupMatrixMultiplyAccumulate(pl, subgroupMatrixLoad<RightT, row_major>(&hs, KO + (sg + ${4 * k}u) * 16u, KSTR), acc_${k});`,
    ),
  ];
  const write = rounds.flatMap((ks) => [
    ...ks.map((k, i) => `subgroupMatrixStore<row_major>(&sp, sg * 512u + ${256 * i}u, acc_${k}, 16u);`),
    `workgroupBarrier();`,
    `for (var i = lid % 32u; i < ${256 * ks.length}u; i += 32u) {`,
    `  let row = (i % 256u) / 16u;`,
    `  if (row < gc) {`,
    `    let col = (sg + 4u * (${ks[0]}u + i / 256u)) * 16u + i % 16u;`,
    `    o_part[((b * u.heads + h0 + row) * S + split) * RDIM + col] = sp[sg * 512u + i] * alph[row];`,
    `  }`,
    `}`,
    `workgroupBarrier();`,
  ]);
  const R16 = v.kvLoraRank / 16;
  const P16 = v.ropeDim / 16;
  const step = (acc: string, k: string) =>
    `${acc} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<LeftT, row_major>(&hs, ${k} * 16u, KSTR), ` +
    `subgroupMatrixLoad<RightT, col_major>(&hs, KO + ${k} * 16u, KSTR), ${acc});`;
  const scores = [
    // R16 is a multiple of 4: every subgroup has the same R16 / 4 latent steps
    ...range(R16 / 4).map((j) => step('sa', `(sg + ${4 * j}u)`)),
    ...range(Math.ceil(P16 / 4)).map((j) => `if (sg + ${4 * j}u < ${P16}u) { ${step('sb', `(${R16 + 4 * j}u + sg)`)} }`),
  ];
  return {
    SCORES: scores.join('\n    '),
    ACC_INIT: [
      ...range(NACC).map((k) => `var acc_${k} = ResT();`),
      ...range(NCH).map((k) => `var raw_${k} = vec4<u32>(0u);`),
      ...(scaled ? ['var raw_s = 0.0;'] : []),
    ].join('\n  '),
    FETCH_FIRST: fetch('t_begin').join('\n  '),
    STORE: store.join('\n    '),
    FETCH_NEXT: fetch('(t0 + BT)').join('\n    '),
    SCORES_STORE: [
      `subgroupMatrixStore<row_major>(&sp, sg * 512u, sa, 16u);`,
      `subgroupMatrixStore<row_major>(&sp, sg * 512u + 256u, sb, 16u);`,
    ].join('\n    '),
    SOFTMAX: softmax.join('\n    '),
    RESCALE: rescale.join('\n      '),
    PV: pv.join('\n    '),
    WRITE: write.join('\n  '),
  };
}

function build_groupedDecodeMmaShader(v: MmaShape): KernelShader & { readonly uniforms: typeof MMA_UNIFORMS } {
  check(v);
  const l = latentKvLayout({ kvLoraRank: v.kvLoraRank, ropeDim: v.ropeDim, pageSize: v.pageSize, dtype: v.dtype });
  const D = v.kvLoraRank + v.ropeDim;
  const K4 = D / 4;
  const NACC = v.kvLoraRank / 16 / MMA.subgroups;
  const NCH = Math.ceil((MMA.tileTokens * K4) / MMA.workgroupSize);
  const scaled = l.scales.kind !== 'none';
  const consts: Record<string, number> = {
    D, RDIM: v.kvLoraRank, R16: v.kvLoraRank / 16, KT: D / 16, KSTR: kstr(v), BT: MMA.tileTokens, PSTR, G: v.headGroup,
    WG: MMA.workgroupSize, R4: v.kvLoraRank / 4, K4, PAGE_SIZE: v.pageSize, ROW_WORDS: l.rowBytes / 4,
    LATENT_WORDS: l.latentBytes / 4, PAGE_WORDS: l.pageBytes / 4, SCALES_WORD: l.scalesOffset / 4,
  };
  const pools = Array.from({ length: v.poolBindings }, (_, k) => `@group(0) @binding(${4 + k}) var<storage, read> pool${k}: array<u32>;`);
  const o = 4 + v.poolBindings;
  return {
    label: `grouped_decode_attn_mma_${v.dtype}_r${v.kvLoraRank}_p${v.ropeDim}_ps${v.pageSize}_g${v.headGroup}_t${MMA.tileTokens}_pools${v.poolBindings}`,
    uniforms: MMA_UNIFORMS,
    source: `${SUBGROUP_MATRIX_WGSL}
${Object.entries(consts).map(([k, val]) => `const ${k}: u32 = ${val}u;`).join('\n')}
const SCALED: bool = ${scaled};
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> seq_lens: array<u32>;
@group(0) @binding(2) var<storage, read> page_offsets: array<u32>;
@group(0) @binding(3) var<storage, read> page_table: array<u32>;
${pools.join('\n')}
@group(0) @binding(${o}) var<storage, read_write> o_part: array<f32>;
@group(0) @binding(${o + 1}) var<storage, read_write> lse: array<f32>;
${uniformStructWgsl(MMA_UNIFORMS, o + 2)}
${pageWgsl(l, v.poolBindings)}
${fillWgsl(MMA_WGSL, hotLoops(v, NACC, NCH, scaled), 'grouped-decode-attention-mma.wgsl')}`,
  };
}

export const groupedDecodeMmaShader = memoShader(build_groupedDecodeMmaShader);
