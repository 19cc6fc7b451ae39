// The workload of an open-loop serving benchmark, as SGLang's bench_serving builds its "random" dataset:
// NUM_PROMPTS requests, each with a prompt of uniform random length in [inputMin, inputMax] random token
// ids and a uniform random output length in [outputMin, outputMax], arriving as a Poisson process of
// `rate` requests/s (exponential gaps; rate Infinity sends all at once). Seeded: the same settings give the
// same requests and arrival times.
import { seededRandom } from '@latentwire/testing';

export interface WorkloadSpec {
  readonly numPrompts: number;
  /** Requests per second; Infinity = all at t=0. */
  readonly rate: number;
  readonly inputMin: number;
  readonly inputMax: number;
  readonly outputMin: number;
  readonly outputMax: number;
  /** Prompt ids are drawn from [firstId, vocabSize) (skipping bos/eos). */
  readonly vocabSize: number;
  readonly firstId: number;
  readonly seed: number;
}

export interface PlannedRequest {
  readonly index: number;
  /** ms after the start of the run. */
  readonly sendAt: number;
  readonly promptIds: number[];
  readonly maxTokens: number;
}

export function planWorkload(w: WorkloadSpec): PlannedRequest[] {
  const rand = seededRandom(w.seed);
  const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const out: PlannedRequest[] = [];
  let t = 0;
  for (let index = 0; index < w.numPrompts; index++) {
    const promptIds = Array.from({ length: between(w.inputMin, w.inputMax) }, () => between(w.firstId, w.vocabSize - 1));
    out.push({ index, sendAt: t, promptIds, maxTokens: between(w.outputMin, w.outputMax) });
    if (Number.isFinite(w.rate)) t += (-Math.log(1 - rand()) / w.rate) * 1e3;
  }
  return out;
}
