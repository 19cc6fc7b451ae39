// The K order of the f16 slabs the subgroup-matrix GEMMs stage in workgroup memory ([rows, STR], STR = BK + 8).
//
// A slab is staged by lanes that each hold `chunk` consecutive K values of one row (lane lid: row lid / (BK/chunk),
// values from (lid % (BK/chunk))·chunk), stored one f16 a store instruction. In K order, a store instruction's 32
// lanes write every chunk-th value of 32/(BK/chunk) rows, and the rows' padding puts some of their 32-bit words in
// the same bank: at BK = 32, x's 4-value chunks make 3 shared-memory wavefronts a store and W's 2-value chunks 2,
// where one would do. The products sum over K, so any order of a slab's K columns that x and W share gives the same
// y: value k goes to column (k % P)·(BK/P) + k / P, P chosen here by counting each store's wavefronts (32 banks of
// 4 bytes; lanes writing halves of one word share it). A chunk's values then sit at its first value's column plus
// a constant per value, so the stores keep one offset a lane.

/** Slab column of K value k (0 ≤ k < BK) with interleave P (a power of two dividing BK; 1: K order). */
export function slabColumn(BK: number, P: number, k: number): number {
  return (k % P) * (BK / P) + Math.floor(k / P);
}

/** Mean shared-memory wavefronts of a warp's store instruction, staging BK-deep rows of stride STR in `chunk`s. */
export function slabStoreWavefronts(BK: number, STR: number, chunk: number, P: number): number {
  const perRow = BK / chunk;
  let total = 0, stores = 0;
  // the 32 lanes of a warp cover 32 consecutive chunks; every warp of a slab sees the same pattern up to a shift of
  // whole rows, but rows shift banks by STR, so a few warps' worth are counted
  for (let first = 0; first < 8 * 32; first += 32) {
    for (let e = 0; e < chunk; e++) {
      const banks = new Map<number, Set<number>>();
      for (let lane = 0; lane < 32; lane++) {
        const c = first + lane;
        const word = Math.floor(((Math.floor(c / perRow) * STR) + slabColumn(BK, P, (c % perRow) * chunk + e)) / 2);
        const bank = word % 32;
        if (!banks.has(bank)) banks.set(bank, new Set());
        banks.get(bank)!.add(word);
      }
      total += Math.max(...[...banks.values()].map((w) => w.size));
      stores++;
    }
  }
  return total / stores;
}

/**
 * The interleave P for BK-deep slabs of stride STR whose lanes hold chunks of the given sizes (x: 4, bf16/f16 W: 2,
 * f32 W: 1): the fewest wavefronts over their stores, each chunk size counted per value it stores; K order on ties.
 */
export function slabInterleave(BK: number, STR: number, chunks: readonly number[]): number {
  let best = 1, bestCost = Infinity;
  for (let P = 1; P <= BK; P *= 2) {
    if (BK % P !== 0) continue;
    const cost = chunks.reduce((s, chunk) => s + slabStoreWavefronts(BK, STR, chunk, P), 0);
    if (cost < bestCost - 1e-9) { best = P; bestCost = cost; }
  }
  return best;
}

/**
 * WGSL for staging a chunk: `first(k)`, the column of the chunk starting at K value `k` (a WGSL u32 expression, a
 * multiple of `chunk`), and `step(e)`, the constant column offset of its value e. Throws where P does not keep a
 * chunk's values at constant offsets (it does for every power of two with chunks of 1, 2 or 4).
 */
export function slabChunkWgsl(BK: number, P: number, chunk: number): { first: (k: string) => string; step: (e: number) => number } {
  for (let c = 0; c < BK; c += chunk) {
    for (let e = 0; e < chunk; e++) {
      if (slabColumn(BK, P, c + e) - slabColumn(BK, P, c) !== slabColumn(BK, P, e)) {
        throw new RangeError(`slab order: interleave ${P} moves a ${chunk}-value chunk's values apart at BK ${BK}`);
      }
    }
  }
  return {
    first: (k) => (P === 1 ? k : `((${k}) % ${P}u) * ${BK / P}u + (${k}) / ${P}u`),
    step: (e) => slabColumn(BK, P, e),
  };
}
