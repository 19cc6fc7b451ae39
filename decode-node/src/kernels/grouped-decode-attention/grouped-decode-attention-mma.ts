// The subgroup-matrix (tensor-core) variant of grouped decode attention: same inputs, outputs, grid, scratch and
// merge as the portable kernel (grouped-decode-attention.ts runs it when variant.engine is 'subgroup-matrix');
// the products are 16×16×16 f16 → f32 subgroup matrices. See grouped-decode-attention-mma.wgsl.
//
// Needs the device features chromium-experimental-subgroup-matrix, shader-f16 and subgroups, a 16×16×16
// f16 → f32 matrix config, subgroups of exactly 32 (8 per workgroup of 256), r a multiple of 64 and rope of 16.
//
// Status (H200, driver 580.159.04): matches float64 within 1.4e-4..7e-4 (1e-2 where scores grow 7× over the
// sequence: q is rounded to f16) and the portable kernel on every dtype
// (bench/results/decode-attention-mma-test.h200.log). Every workgroup variable is a multiple of 16 bytes: with a
// 4-byte flag among them the f16 tile could start misaligned, and matrix loads from it then read shifted rows.
// History: the first version (4 subgroups, 16-token tiles, q reloaded from workgroup memory every tile, the
// e4m3 scale applied to scores and weights) ran 2-3x behind SGLang's Triton kernel; 32-token tiles, q in
// registers, loads issued together and the decode stores spread over banks brought it to about SGLang's times.
// Head groups of 17..32 as two row tiles over each staged cache tile (2026-12-07, H100, tested there with the
// portable kernel and float64): V2's 128 heads 1.5x faster than groups of 16 (decode-attention-head-group.h100.txt).
// Measured and not taken (12-07, H100, each against this kernel in the same call; git show caccfde): loading two tiles
// ahead, and decoding the next tile to f16 in registers among this tile's products (plain stores between the
// barriers), slower on 7 of 8 rows (decode-attention-prefetch.h100.txt); what bounds the 16-head FP8 rows is
// in decode-attention-ablate.h100.txt (the tile's decode and scalar f16 stores first); lanes 16..31 storing their
// FP8 word's f16 pairs swapped, +10..17% (decode-attention-swap-halves.h100.txt, git show 4bfcd3a).
// Occupancy (bench/occupancy, H100): 256-invocation workgroups of more than 24 KiB of workgroup memory run one a
// multiprocessor, so this kernel (47.9 KiB at 32-token tiles) runs one whatever its grid and the split policy fills
// one wave. 16-token tiles with the scores split 4 ways fit 23.1 KiB and run two at once, but win only for fp8_e5m2
// (-2..-10% at twice the workgroups; bf16 and fp8_e4m3 slower: decode-attention-tile16.h100.txt): an option, not the
// plan's. e4m3 by spread bytes: 1-3% faster than masking each code's parts apart (decode-attention-e4m3-spread.h100.txt).
// 16 subgroups a workgroup (512 invocations; git show 518f4f2): fp8_e5m2 -3..-4%, fp8_e4m3 and bf16 +1..+3%, 128 heads
// +13..+71% (decode-attention-sg16.h100.txt). Only the cheapest decode gains from more subgroups in flight; by these
// numbers the others are bound by the instructions a multiprocessor issues (fp8_e4m3) or by the bytes (bf16).
// Fewer of them did help: each word's store chosen when generated and no per-word zeroing past the end, 16 heads
// fp8_e4m3 -5%, 128 heads -13.6% (same-call A/B, decode-attention-store-trim.h100.txt).
import type { KernelShader } from '@latentwire/gpu';
import { SUBGROUP_MATRIX_WGSL, bindings, defineKernel, fillWgsl, loadWgsl } from '@latentwire/gpu';
import { KV_ELEMENT_BYTES, latentKvLayout, type KvDtype, type KvElementType, type LatentKvLayout } from '@latentwire/protocol';
import { poolWordsWgsl } from './page-words-wgsl.js';
import { splitStorage } from './split-bindings.js';

const MMA_WGSL = loadWgsl(new URL('./grouped-decode-attention-mma.wgsl', import.meta.url));

export const MMA_UNIFORMS = { heads: 'u32', num_splits: 'u32', pages_per_buffer: 'u32', scale_log2e: 'f32' } as const;

/** Fixed shape of the variant: 8 subgroups of 32, 32 tokens a tile by default (16 on request), 32 rows (heads) a
 *  group at most (the plan's group unless told otherwise): one 16-row matrix tile up to 16 heads, two above. */
export const MMA = { subgroupSize: 32, subgroups: 8, workgroupSize: 256, tileTokens: 32, tileTokenChoices: [16, 32], maxHeadGroup: 32 } as const;

export type { MatrixCapabilities } from '@latentwire/gpu';
/** Why the device cannot run the variant, or null when it can: the requirements every subgroup-matrix kernel shares. */
export { subgroupMatrixUnsupportedReason as mmaUnsupportedReason } from '@latentwire/gpu';

export interface MmaShape {
  readonly kvLoraRank: number; readonly ropeDim: number; readonly dtype: KvDtype; readonly pageSize: number;
  readonly headGroup: number; readonly poolBindings: number;
  /** Tokens a staged cache tile (MMA.tileTokenChoices; default MMA.tileTokens). 16 with one row tile fits 23.1 KiB
   *  (the scores split 4 ways, by half the subgroups), so an H100 runs two workgroups a multiprocessor instead of one,
   *  at twice the barriers a token: faster for fp8_e5m2 at twice the workgroups, slower otherwise
   *  (decode-attention-tile16.h100.txt); not the plan's choice. */
  readonly tileTokens?: number;
}

function check(v: MmaShape): void {
  const fail = (msg: string): never => {
    throw new RangeError(`groupedDecodeAttention (subgroup-matrix): ${msg} (variant ${JSON.stringify(v)})`);
  };
  if (!Number.isInteger(v.kvLoraRank) || v.kvLoraRank < 64 || v.kvLoraRank % 64 !== 0) fail('kvLoraRank must be a multiple of 64');
  if (!Number.isInteger(v.ropeDim) || v.ropeDim < 16 || v.ropeDim % 16 !== 0) fail('ropeDim must be a positive multiple of 16');
  if (!Number.isInteger(v.headGroup) || v.headGroup < 1 || v.headGroup > MMA.maxHeadGroup) fail(`headGroup must be 1..${MMA.maxHeadGroup}`);
  if (v.tileTokens !== undefined && !(MMA.tileTokenChoices as readonly number[]).includes(v.tileTokens)) fail(`tileTokens must be one of ${MMA.tileTokenChoices.join(', ')}`);
}

/** f16 row stride in workgroup memory: the row padded by 8 values so the rows of a tile start on different banks. */
const kstr = (v: MmaShape) => v.kvLoraRank + v.ropeDim + 8;
const tileTokens = (v: MmaShape) => v.tileTokens ?? MMA.tileTokens;
const pstr = (v: MmaShape) => tileTokens(v) + 8;

/** The tile's layout: MT 16-row matrix tiles (M rows), JT 16-token tiles of it, the scores split KQ = min(4, 8 /
 *  (JT·MT)) ways along k (SSG = JT·KQ·MT subgroups compute them: all 8 but at 16 tokens and one row tile, where 4
 *  do, so the partials take 4 KiB), HJ invocations a row in the softmax, the score partials' f32 row stride (padded
 *  by 4 where one row tile of 32 tokens leaves room, else unpadded), SLOTS subgroups' 256 floats the partials' memory
 *  stages at a time at the end and in a rescale, and HSN, the f16 values of hs (the tile and the weights, or q's M
 *  rows before the loop). 16 tokens and one row tile: 23.1 KiB in all, which lets an H100 run two workgroups a
 *  multiprocessor (bench/occupancy: 24 KiB do, 28 KiB do not). */
function rowTiles(v: MmaShape): { MT: number; MROWS: number; JT: number; KQ: number; SSG: number; HJ: number; SPSTR: number; SLOTS: number; HSN: number } {
  const MT = v.headGroup > 16 ? 2 : 1;
  const BT = tileTokens(v);
  const JT = BT / 16;
  const MROWS = 16 * MT;
  const KQ = Math.min(4, MMA.subgroups / (JT * MT));
  const SPSTR = MT === 1 && BT === 32 ? BT + 4 : BT;
  return {
    MT, MROWS, JT, KQ, SSG: JT * KQ * MT, HJ: MMA.workgroupSize / MROWS, SPSTR,
    SLOTS: Math.min(MMA.subgroups, Math.floor((KQ * MROWS * SPSTR) / 256)),
    HSN: Math.max(BT * kstr(v) + MROWS * pstr(v), MROWS * kstr(v)),
  };
}

export function groupedDecodeMmaWorkgroupBytes(v: MmaShape): number {
  check(v);
  const { MROWS, KQ, SPSTR, HSN } = rowTiles(v);
  return 2 * HSN + 4 * KQ * MROWS * SPSTR + 4 * MROWS + 16;
}

/** WGSL turning one raw word of the cache into f16 values at hs[o ..]: put_latent (times s, e4m3's scale·256) and put_rope. */
function wordDecodeWgsl(l: LatentKvLayout): string {
  const put = (type: KvElementType, scaled: boolean): string => {
    const mul = scaled ? ' * s' : '';
    switch (type) {
      case 'f32':
        return `hs[o] = f16(bitcast<f32>(w));`;
      case 'bf16':
        return `let v = vec2<f16>(bitcast<vec2<f32>>(vec2<u32>(w << 16u, w & 0xffff0000u)))${mul};\n  hs[o] = v.x; hs[o + 1u] = v.y;`;
      case 'fp8_e5m2':
        return `let v = vec4<f16>(bitcast<vec2<f16>>(((w & 0xffu) << 8u) | ((w & 0xff00u) << 16u)), bitcast<vec2<f16>>(((w >> 8u) & 0xff00u) | (w & 0xff000000u)))${mul};\n  hs[o] = v.x; hs[o + 1u] = v.y; hs[o + 2u] = v.z; hs[o + 3u] = v.w;`;
      case 'fp8_e4m3':
        // bytes 0, 1 and 2, 3 of the word spread into the low bytes of two words' 16-bit halves
        return `let v = vec4<f16>(bitcast<vec2<f16>>(e4m3_pair16((w & 0xffu) | ((w << 8u) & 0xff0000u))), bitcast<vec2<f16>>(e4m3_pair16(((w >> 16u) & 0xffu) | ((w >> 8u) & 0xff0000u))))${mul};\n  hs[o] = v.x; hs[o + 1u] = v.y; hs[o + 2u] = v.z; hs[o + 3u] = v.w;`;
    }
  };
  return `// two e4m3 codes in the low bytes of t's 16-bit halves → two f16 holding code·2^-8: sign to bit 15 of each half,
// exponent+mantissa shifted by 7 (two masked shifts: 1-3% faster on the H100 than masking each code's parts apart)
fn e4m3_pair16(t: u32) -> u32 {
  return ((t << 7u) & 0x3f803f80u) | ((t << 8u) & 0x80008000u);
}
// a latent word (${4 / KV_ELEMENT_BYTES[l.latentType]} values) at hs[o ..]; s: its token's scale·256 (e4m3), else unused.
// bf16/f32 values past 65504 become inf (see the header); e5m2 codes are the top bytes of f16s.
fn put_latent(o: u32, w: u32, s: f16) {
  ${put(l.latentType, l.scales.kind !== 'none')}
}
// a rope word (${4 / KV_ELEMENT_BYTES[l.ropeType]} values) at hs[o ..]
fn put_rope(o: u32, w: u32) {
  ${put(l.ropeType, false)}
}`;
}

/** The unrolled parts: q tiles and accumulators are named registers. */
function hotLoops(v: MmaShape, RW: number, LW: number, scaled: boolean, pools: number): Record<string, string> {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const { subgroups: NSG, workgroupSize: WG } = MMA;
  const BT = tileTokens(v);
  const { MT, MROWS, KQ, SSG, HJ, SLOTS } = rowTiles(v);
  const KT = (v.kvLoraRank + v.ropeDim) / 16;
  const QN = Math.ceil(KT / KQ);
  const R16 = v.kvLoraRank / 16;
  const NACC = Math.ceil(R16 / NSG);
  // accumulator m·NACC + c: row tile m, column tile sg + NSG·c
  const accs = range(MT).flatMap((m) => range(NACC).map((c) => ({ m, c, name: `acc_${m * NACC + c}` })));
  const rowOf = (m: number, i: string) => (m === 0 ? `${i} / 16u` : `${16 * m}u + ${i} / 16u`);
  // a k-step i of this subgroup exists for every kq when KQ·(i+1) ≤ KT; the last may exist only for some kq
  const qGuard = (i: number) => (KQ * (i + 1) <= KT ? '' : `if (kq + ${KQ * i}u < KT) `);
  // `if (…) ` over the conditions given, or nothing; column tile sg + NSG·c exists for every subgroup unless R16
  // is not a multiple of NSG
  const guardOf = (conds: string[]) => (conds.length === 0 ? '' : `if (${conds.join(' && ')}) `);
  const accCond = (c: number) => (NSG * (c + 1) <= R16 ? [] : [`sg + ${NSG * c}u < R16`]);
  const accGuard = (c: number) => guardOf(accCond(c));
  const NCW = Math.ceil(RW / 32);
  const locate = pools === 1 ? (m: number) => `let index_${m} = pg_${m};` : (m: number) => `let pool_${m} = pg_${m} / u.pages_per_buffer; let index_${m} = pg_${m} - pool_${m} * u.pages_per_buffer;`;
  const pool = (m: number) => (pools === 1 ? '0u' : `pool_${m}`);
  // subgroup sg moves tokens sg, sg+8, ... of the tile, lane by lane along the row's words (coalesced loads, and
  // stores of neighbouring words to neighbouring banks); a word past the row exists only when RW is not a
  // multiple of 32
  const TPW = BT / NSG;
  const wordGuard = (c: number) => (32 * (c + 1) <= RW ? '' : `if (lane + ${32 * c}u < RW) `);
  const fetch = (tb: string) => [
    // each token clamped into the sequence (a row past the end loads the last token's again)
    ...range(TPW).map((m) => `let tok_${m} = min(${tb} + sg + ${NSG * m}u, t_end - 1u);`),
    ...range(TPW).map((m) => `let pg_${m} = page_table[pt0 + tok_${m} / PAGE_SIZE];`),
    ...range(TPW).flatMap((m) => [
      locate(m),
      `let row_${m} = index_${m} * PAGE_WORDS + (tok_${m} % PAGE_SIZE) * RW + lane;`,
      ...range(NCW).map((c) => `${wordGuard(c)}{ raw_${m}_${c} = cw(${pool(m)}, row_${m} + ${32 * c}u); }`),
      ...(scaled ? [`sc_${m} = cw(${pool(m)}, index_${m} * PAGE_WORDS + SCALES_WORD + tok_${m} % PAGE_SIZE);`] : []),
    ]),
  ];
  // each word to put_latent or put_rope as known when generated (a runtime test only for a chunk of 32 words that
  // holds both); a row past the sequence's end is stored as loaded, its clamped token's values, finite, which the
  // softmax weights 0 (no per-word select: fewer instructions for the tile's decode, which bounds fp8_e4m3)
  const store = [
    ...range(TPW).flatMap((m) => [
      `{`,
      `  let tt = sg + ${NSG * m}u;`,
      ...(scaled ? [`  let s = f16(bitcast<f32>(sc_${m}) * 256.0);`] : [`  let s = f16(1.0);`]),
      ...range(NCW).map((c) => {
        const w = `lane + ${32 * c}u`;
        const latent = `put_latent(tt * KSTR + (${w}) * LVALS, raw_${m}_${c}, s);`;
        const rope = `put_rope(tt * KSTR + RDIM + (${w} - LW) * RVALS, raw_${m}_${c});`;
        const body = 32 * (c + 1) <= LW ? latent : 32 * c >= LW ? rope : `if (${w} < LW) { ${latent} } else { ${rope} }`;
        return `  ${wordGuard(c)}{ ${body} }`;
      }),
      `}`,
    ]),
  ];
  // a thread's tokens of its row: hj, hj + HJ, ...; the row's HJ lanes reduced by shuffles
  const TPT = BT / HJ;
  const shuffles = range(Math.log2(HJ)).map((i) => 2 ** i);
  const partial = (k: number) => (k === 0 ? 'sp[c]' : `sp[c + ${k * MROWS}u * SPSTR]`);
  // the KQ partials summed pairwise (a tree: fewer dependent adds)
  const tree = (xs: string[]): string => (xs.length === 1 ? xs[0]! : `(${tree(xs.slice(0, xs.length / 2))} + ${tree(xs.slice(xs.length / 2))})`);
  const partials = tree(range(KQ).map(partial));
  const softmax = [
    ...range(TPT).flatMap((tt) => [
      `var x_${tt} = MASKED;`,
      `if (t0 + hj + ${HJ * tt}u < t_end) {`,
      `  let c = hrow * SPSTR + hj + ${HJ * tt}u;`,
      `  x_${tt} = ${partials};`,
      `}`,
    ]),
    `var m_tile = ${range(TPT).map((tt) => `x_${tt}`).reduce((a, b) => `max(${a}, ${b})`)};`,
    ...shuffles.map((m) => `m_tile = max(m_tile, subgroupShuffleXor(m_tile, ${m}u));`),
    `var m_use = m_run;`,
    `var alpha = 1.0;`,
    `if (l_run == 0.0) { m_use = m_tile; } else if (m_tile > m_run + TAU) { m_use = m_tile; alpha = exp2(m_run - m_tile); }`,
    ...range(TPT).map((tt) => `let p_${tt} = select(0.0, exp2(x_${tt} - m_use), t0 + hj + ${HJ * tt}u < t_end);`),
    `var psum = ${range(TPT).map((tt) => `p_${tt}`).join(' + ')};`,
    ...shuffles.map((m) => `psum += subgroupShuffleXor(psum, ${m}u);`),
    `l_run = l_run * alpha + psum;`,
    `m_run = m_use;`,
    ...range(TPT).map((tt) => `hs[PO + hrow * PSTR + hj + ${HJ * tt}u] = f16(p_${tt});`),
    `if (hj == 0u) {`,
    `  alph[hrow] = alpha;`,
    `  if (alpha != 1.0) { resc[0] = 1u; }`,
    `}`,
  ];
  // rounds of one accumulator a subgroup through its 256 floats of sp (slot sg % SLOTS; with fewer slots than
  // subgroups, those of round sg / SLOTS take turns); the barriers stay outside the guards
  const rounds = range(NSG / SLOTS);
  const turn = (r: number, c: number) => guardOf([...(rounds.length > 1 ? [`sg / SLOTS == ${r}u`] : []), ...accCond(c)]);
  const slot = rounds.length > 1 ? '(sg % SLOTS) * 256u' : 'sg * 256u';
  const viaScratch = (body: (a: (typeof accs)[number], guard: string) => string[]) =>
    accs.flatMap((a) => rounds.flatMap((r) => [
      `${turn(r, a.c)}{ subgroupMatrixStore<row_major>(&sp, ${slot}, ${a.name}, 16u); }`,
      `workgroupBarrier();`,
      ...body(a, turn(r, a.c)),
      `workgroupBarrier();`,
    ]));
  const rescale = viaScratch(({ m, name }, guard) => [
    `${guard}{`,
    `  for (var i = lid % 32u; i < 256u; i += 32u) { sp[${slot} + i] *= alph[${rowOf(m, 'i')}]; }`,
    `}`,
    `workgroupBarrier();`,
    `${guard}{ ${name} = subgroupMatrixLoad<ResT, row_major>(&sp, ${slot}, 16u); }`,
  ]);
  const write = viaScratch(({ m, c }, guard) => [
    `${guard}{`,
    `  for (var i = lid % 32u; i < 256u; i += 32u) {`,
    `    let row = ${rowOf(m, 'i')};`,
    `    if (row < gc) {`,
    `      o_part[((b * u.heads + h0 + row) * S + split) * RDIM + (sg + ${NSG * c}u) * 16u + i % 16u] = sp[${slot} + i] * alph[row];`,
    `    }`,
    `  }`,
    `}`,
  ]);
  // each column tile of the cache loaded once for the MT row tiles' products
  const pSlice = (m: number, kk: number) => `subgroupMatrixLoad<LeftT, row_major>(&hs, PO + ${m === 0 ? '' : `${16 * m}u * PSTR + `}${16 * kk}u, PSTR)`;
  const cSlice = (kk: number, c: number) => `subgroupMatrixLoad<RightT, row_major>(&hs, ${16 * kk}u * KSTR + (sg + ${NSG * c}u) * 16u, KSTR)`;
  const pv = range(BT / 16).flatMap((kk) => [
    `{`,
    ...(MT === 1
      ? [
        `  let pl = ${pSlice(0, kk)};`,
        ...range(NACC).map((c) => `  ${accGuard(c)}{ acc_${c} = subgroupMatrixMultiplyAccumulate(pl, ${cSlice(kk, c)}, acc_${c}); }`),
      ]
      : [
        ...range(MT).map((m) => `  let pl_${m} = ${pSlice(m, kk)};`),
        ...range(NACC).flatMap((c) => [
          `  ${accGuard(c)}{`,
          `    let cl = ${cSlice(kk, c)};`,
          ...range(MT).map((m) => `    acc_${m * NACC + c} = subgroupMatrixMultiplyAccumulate(pl_${m}, cl, acc_${m * NACC + c});`),
          `  }`,
        ]),
      ]),
    `}`,
  ]);
  // q's 16 × D values as groups of 4 (D is a multiple of 16, so a group never straddles rows): a thread's groups
  // loaded first, then scaled and stored as f16 (a loop of one load then its store waited on each of its 36 loads)
  const QG = Math.ceil((MROWS * (v.kvLoraRank + v.ropeDim)) / 4 / WG);
  const qGroupGuard = (j: number) => ((j + 1) * WG * 4 <= MROWS * (v.kvLoraRank + v.ropeDim) ? '' : `if (qe_${j} < MROWS * D) `);
  const qFetch = range(QG).flatMap((j) => [
    `let qe_${j} = (lid + ${j * WG}u) * 4u;`,
    `var qv_${j} = vec4<f32>(0.0);`,
    `if (qe_${j} < MROWS * D && qe_${j} / D < gc) { let o = (b * u.heads + h0) * D + qe_${j}; qv_${j} = vec4<f32>(q[o], q[o + 1u], q[o + 2u], q[o + 3u]); }`,
  ]);
  const qStore = range(QG).map((j) => `${qGroupGuard(j)}{
    let o = (qe_${j} / D) * KSTR + qe_${j} % D;
    hs[o] = f16(qv_${j}.x * u.scale_log2e); hs[o + 1u] = f16(qv_${j}.y * u.scale_log2e); hs[o + 2u] = f16(qv_${j}.z * u.scale_log2e); hs[o + 3u] = f16(qv_${j}.w * u.scale_log2e);
  }`);
  return {
    Q_FETCH: qFetch.join('\n  '),
    Q_STORE: qStore.join('\n  '),
    Q_LOAD: range(QN).map((i) => `var q_${i} = LeftT();
  ${qGuard(i)}{ q_${i} = subgroupMatrixLoad<LeftT, row_major>(&hs, ${MT === 1 ? '' : 'mt * 16u * KSTR + '}(kq + ${KQ * i}u) * 16u, KSTR); }`).join('\n  '),
    ACC_INIT: [
      ...accs.map((a) => `var ${a.name} = ResT();`),
      ...range(BT / NSG).flatMap((m) => range(NCW).map((c) => `var raw_${m}_${c} = 0u;`)),
      ...(scaled ? range(BT / NSG).map((m) => `var sc_${m} = 0u;`) : []),
    ].join('\n  '),
    FETCH_FIRST: fetch('t_begin').join('\n    '),
    STORE: store.join('\n    '),
    FETCH_NEXT: fetch('(t0 + BT)').join('\n      '),
    SCORES: [
      ...(SSG < NSG ? [`if (sg < SSG) {`] : []),
      ...range(QN).map((i) => `${qGuard(i)}{ s = subgroupMatrixMultiplyAccumulate(q_${i}, subgroupMatrixLoad<RightT, col_major>(&hs, jt * 16u * KSTR + (kq + ${KQ * i}u) * 16u, KSTR), s); }`),
      `subgroupMatrixStore<row_major>(&sp, (kq * MROWS + mt * 16u) * SPSTR + jt * 16u, s, SPSTR);`,
      ...(SSG < NSG ? [`}`] : []),
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
  const scaled = l.scales.kind !== 'none';
  const tiles = rowTiles(v);
  const consts: Record<string, number> = {
    D, RDIM: v.kvLoraRank, KT: D / 16, R16: v.kvLoraRank / 16, KSTR: kstr(v), BT: tileTokens(v), PSTR: pstr(v), G: v.headGroup,
    MROWS: tiles.MROWS, JT: tiles.JT, KQ: tiles.KQ, SSG: tiles.SSG, HJ: tiles.HJ, SPSTR: tiles.SPSTR, SLOTS: tiles.SLOTS, HSN: tiles.HSN,
    WG: MMA.workgroupSize, RW: l.rowBytes / 4, LW: l.latentBytes / 4, LVALS: 4 / KV_ELEMENT_BYTES[l.latentType], RVALS: 4 / KV_ELEMENT_BYTES[l.ropeType],
    PAGE_SIZE: v.pageSize, PAGE_WORDS: l.pageBytes / 4, SCALES_WORD: l.scalesOffset / 4,
  };
  const { cw } = poolWordsWgsl(v.poolBindings);
  const B = bindings(splitStorage(v.poolBindings, 'f32'), MMA_UNIFORMS);
  const label = `grouped_decode_attn_mma_${v.dtype}_r${v.kvLoraRank}_p${v.ropeDim}_ps${v.pageSize}_g${v.headGroup}_t${tileTokens(v)}_w${MMA.workgroupSize}_pools${v.poolBindings}`;
  return B.shader(label, `${SUBGROUP_MATRIX_WGSL}
${Object.entries(consts).map(([k, val]) => `const ${k}: u32 = ${val}u;`).join('\n')}
${B.wgsl}${cw}
${wordDecodeWgsl(l)}
${fillWgsl(MMA_WGSL, hotLoops(v, l.rowBytes / 4, l.latentBytes / 4, scaled, v.poolBindings), 'grouped-decode-attention-mma.wgsl')}`);
}

export const groupedDecodeMmaShader = defineKernel('grouped_decode_attn_mma', build_groupedDecodeMmaShader);
