// Elementary float64 ops of the reference. Matrices are row-major Float64Arrays; the row count is implied by
// the length, so every op takes only the one dimension it cannot infer. No tricks: these are the spec.

/** Rows of `table` ([vocab × hidden]) picked by `ids`: [ids.length × hidden]. */
export function embedding(table: Float64Array, hidden: number, ids: readonly number[]): Float64Array {
  const vocab = table.length / hidden;
  const out = new Float64Array(ids.length * hidden);
  ids.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new RangeError(`token id ${id} outside [0, ${vocab})`);
    out.set(table.subarray(id * hidden, (id + 1) * hidden), t * hidden);
  });
  return out;
}

/**
 * RMSNorm of every row of `x` (row width = w.length): x / sqrt(mean(x²) + eps) * w.
 * HF computes the normalization in float32 and multiplies by the weight afterwards; here all is float64.
 */
export function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  const d = w.length;
  if (x.length % d !== 0) throw new RangeError(`rmsNorm: length ${x.length} is not a multiple of ${d}`);
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let sumSq = 0;
    for (let i = 0; i < d; i++) sumSq += x[r * d + i]! ** 2;
    const inv = 1 / Math.sqrt(sumSq / d + eps);
    for (let i = 0; i < d; i++) out[r * d + i] = x[r * d + i]! * inv * w[i]!;
  }
  return out;
}

/** y = x · Wᵀ with x [M × inDim] and W [N × inDim] (the HF/PyTorch Linear layout): [M × N]. */
export function linear(x: Float64Array, w: Float64Array, inDim: number): Float64Array {
  if (x.length % inDim !== 0 || w.length % inDim !== 0) {
    throw new RangeError(`linear: x (${x.length}) or W (${w.length}) is not a multiple of inDim ${inDim}`);
  }
  const m = x.length / inDim;
  const n = w.length / inDim;
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let o = 0; o < n; o++) {
      let acc = 0;
      for (let k = 0; k < inDim; k++) acc += x[r * inDim + k]! * w[o * inDim + k]!;
      out[r * n + o] = acc;
    }
  }
  return out;
}

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/** Numerically stable softmax of one vector (max subtracted first). */
export function softmax(v: Float64Array): Float64Array {
  let max = -Infinity;
  for (const a of v) max = Math.max(max, a);
  const out = new Float64Array(v.length);
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += out[i] = Math.exp(v[i]! - max);
  for (let i = 0; i < v.length; i++) out[i] = out[i]! / sum;
  return out;
}

export function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** Index of the largest value; the lowest index wins a tie. */
export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/** Element-wise a + b into a new array (residual adds). */
export function add(a: Float64Array, b: Float64Array): Float64Array {
  if (a.length !== b.length) throw new RangeError(`add: lengths ${a.length} and ${b.length} differ`);
  return a.map((v, i) => v + b[i]!);
}

/** Row `r` of a row-major matrix with `width` columns (a view, not a copy). */
export function row(m: Float64Array, width: number, r: number): Float64Array {
  return m.subarray(r * width, (r + 1) * width);
}
