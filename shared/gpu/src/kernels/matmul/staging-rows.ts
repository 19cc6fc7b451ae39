// Which rows of a staged slab the lanes of one store instruction write, in the subgroup-matrix GEMMs and experts.
//
// A slab [rows, STR f16] (STR = BK + 8: the padding keeps the matrix loads' rows on different banks) is staged by
// lanes that each hold one chunk of a row's K values (x: 4, bf16 W: 2), BK / chunk lanes a row; a chunk's f16
// stores are neighbours, which the compiler most likely merges into one 8- or 4-byte store (the model counted here,
// and the one that the H100's timings agreed with: staging-rows.h100.txt, slab-order-banked.h100.txt). The card serves a warp's store 128 bytes a phase (16 lanes of 8 bytes, 32 of 4),
// and a phase whose rows overlap in banks takes more than one wavefront: at BK 32 (rows 20 words apart) the two
// rows of an 8-byte phase meet on 4 banks, as do the two of a 4-byte one. Rows d apart, d·STR ≡ 16 words (mod 32),
// fill the 32 banks exactly. So consecutive row slots of a phase are mapped to rows d apart: slot ρ = nph·m + p
// (nph rows a phase, p < nph) is row (m % d) + d·p + nph·d·⌊m / d⌋, a permutation within each group of nph·d rows.
// Each lane still loads and stores a whole chunk, so the staged slab holds the same values in the same places.

/** Lanes whose stores the card serves in one phase: 128 bytes of them, at most a warp. */
const phaseLanes = (chunkBytes: number) => Math.min(32, Math.floor(128 / chunkBytes));

/** Row of slot ρ with nph rows a phase spread d apart (d = 1: the slot itself). */
export function stagingRow(slot: number, nph: number, d: number): number {
  const m = Math.floor(slot / nph), p = slot % nph;
  return (m % d) + d * p + nph * d * Math.floor(m / d);
}

/** Rows a phase covers at this slab depth and chunk (1 or less: a phase stays within one row). */
function rowsPerPhase(BK: number, chunkValues: number): number {
  return phaseLanes(2 * chunkValues) / (BK / chunkValues);
}

/** Mean shared-memory wavefronts of a warp's store of chunks (values of 2 bytes), rows spread d apart. */
export function stagingStoreWavefronts(BK: number, STR: number, chunkValues: number, d: number): number {
  const perRow = BK / chunkValues, lanes = phaseLanes(2 * chunkValues);
  const nph = Math.max(1, rowsPerPhase(BK, chunkValues));
  let total = 0, warps = 0;
  for (let first = 0; first < 8 * 32; first += 32) {
    for (let p0 = 0; p0 < 32; p0 += lanes) {
      const banks = new Map<number, Set<number>>();
      for (let lane = p0; lane < p0 + lanes; lane++) {
        const c = first + lane;
        const row = stagingRow(Math.floor(c / perRow), nph, d);
        const start = row * STR + (c % perRow) * chunkValues; // in f16
        for (let w = Math.floor(start / 2); w < Math.ceil((start + chunkValues) / 2); w++) {
          if (!banks.has(w % 32)) banks.set(w % 32, new Set());
          banks.get(w % 32)!.add(w);
        }
      }
      total += Math.max(...[...banks.values()].map((s) => s.size));
    }
    warps++;
  }
  return total / warps;
}

/**
 * The spread d for a slab of `rows` rows: the fewest wavefronts a store, 1 (the slots in order) on ties, and only
 * where the groups of nph·d rows divide the slab.
 */
export function stagingRowSpread(BK: number, STR: number, chunkValues: number, rows: number): number {
  const nph = rowsPerPhase(BK, chunkValues);
  if (nph <= 1) return 1;
  let best = 1, bestCost = stagingStoreWavefronts(BK, STR, chunkValues, 1);
  for (let d = 2; d <= 8; d *= 2) {
    if (rows % (nph * d) !== 0) continue;
    const cost = stagingStoreWavefronts(BK, STR, chunkValues, d);
    if (cost < bestCost - 1e-9) { best = d; bestCost = cost; }
  }
  return best;
}

/** WGSL of stagingRow for a u32 slot expression (the expression itself where d is 1). */
export function stagingRowWgsl(slot: string, BK: number, chunkValues: number, d: number): string {
  if (d === 1) return slot;
  const nph = rowsPerPhase(BK, chunkValues);
  return `((${slot}) / ${nph}u % ${d}u + ${d}u * ((${slot}) % ${nph}u) + ${nph * d}u * ((${slot}) / ${nph * d}u))`;
}
