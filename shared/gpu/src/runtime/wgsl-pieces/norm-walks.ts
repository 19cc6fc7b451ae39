// An RMSNorm's two strided walks over a row with their loads in flight together, for the RMSNorm kernel, the norm
// prologue of the fused kernels (rms-rows) and the KV append's latent norm. A loop of one load a trip waits on
// each load before issuing the next (the GPU does not run ahead of a use), so a 2048-wide row walked 128 lanes at
// a time was 16 round trips a lane; 4 loads a trip make it 4. Each element is still handled one by one in index
// order (the squares added in that order), so the results are bit for bit the one-at-a-time loops'.

export interface StridedWalk {
  /** The first index, the stride and the end (exclusive), as WGSL u32 expressions. */
  readonly first: string;
  readonly stride: string;
  readonly end: string;
  /** The f32 value at index expression `c`. */
  readonly load: (c: string) => string;
}

const TRIP = [0, 1, 2, 3];

/** The walk: `body(j, c_j)` for 4 elements a trip (their loads first, by `loads`), then one at a time to the end. */
function walkWgsl(w: StridedWalk, loads: (j: number, c: string) => string, use: (j: number, c: string) => string): string {
  const at = (j: number) => (j === 0 ? 'c' : `c + ${j}u * (${w.stride})`);
  return `{
    var c = ${w.first};
    for (; ${at(3)} < ${w.end}; c += 4u * (${w.stride})) {
      ${TRIP.map((j) => loads(j, at(j))).join('\n      ')}
      ${TRIP.map((j) => use(j, at(j))).join('\n      ')}
    }
    for (; c < ${w.end}; c += ${w.stride}) {
      ${loads(0, 'c')}
      ${use(0, 'c')}
    }
  }`;
}

/**
 * WGSL statements: `acc = fma(v, v, acc)` for v = load(c), c = first, first + stride, … < end (acc declared by the
 * caller). An explicit fma, not `acc += v * v`: a compiler may fuse that multiply and add or not, and on the H100
 * the KV append's guarded squares summed a row 1 ulp off this loop's (fixed by the fma on both sides); every norm
 * adds its squares through sqAddWgsl.
 */
export function sumSquaresWgsl(w: StridedWalk & { readonly acc: string }): string {
  return walkWgsl(w, (j, c) => `let v${j} = ${w.load(c)};`, (j) => `${w.acc} = ${sqAddWgsl(w.acc, `v${j}`)};`);
}

/** The WGSL expression acc + v² as every norm adds its squares: one fma, so no compiler has a choice of rounding. */
export function sqAddWgsl(acc: string, v: string): string {
  return `fma(${v}, ${v}, ${acc})`;
}

/** WGSL statements: `store(c, load(c) · inv · weight(c))` over the walk, as rms-norm writes its normed row. */
export function normedWriteWgsl(w: StridedWalk & { readonly inv: string; readonly weight: (c: string) => string; readonly store: (c: string, v: string) => string }): string {
  return walkWgsl(w, (j, c) => `let v${j} = ${w.load(c)};\n      let g${j} = ${w.weight(c)};`, (j, c) => w.store(c, `v${j} * ${w.inv} * g${j}`));
}
