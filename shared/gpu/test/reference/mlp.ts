// The SiLU-gated MLP (dense layers, every routed expert, and the shared experts): down(silu(gate·x) ⊙ up·x).
import { linear, silu } from './basic-ops.js';
import type { MlpWeights } from './weights.js';

/** x: [M × hidden] → [M × hidden]. The intermediate width is implied by the weights. */
export function siluMlp(x: Float64Array, w: MlpWeights, hidden: number): Float64Array {
  const gate = linear(x, w.gateProj, hidden);
  const up = linear(x, w.upProj, hidden);
  const intermediate = w.gateProj.length / hidden;
  const act = gate.map((g, i) => silu(g) * up[i]!);
  return linear(act, w.downProj, intermediate);
}
