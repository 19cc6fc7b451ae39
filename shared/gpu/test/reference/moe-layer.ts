// A DeepSeekMoE layer: every token goes through its routed experts (weighted) plus the shared experts
// (unweighted), summed. The router runs on the same post_attention_layernorm output as the experts.
import type { MlaConfig } from '@latentwire/model';
import { linear, row } from './basic-ops.js';
import { siluMlp } from './mlp.js';
import { moeRoute, type RouteChoice } from './moe-route.js';
import type { MoeWeights } from './weights.js';

/** Router decision for every token of x ([T × hidden]). */
export function routeTokens(cfg: MlaConfig, w: MoeWeights, x: Float64Array): RouteChoice[] {
  if (!cfg.moe) throw new Error('routeTokens on a dense model');
  const logits = linear(x, w.gate, cfg.hiddenSize);
  const experts = cfg.moe.nRoutedExperts;
  return Array.from({ length: x.length / cfg.hiddenSize }, (_, t) =>
    moeRoute(cfg.moe!, row(logits, experts, t), w.eScoreCorrectionBias),
  );
}

/** The MoE MLP on x ([T × hidden]); returns its output and the routing it used. */
export function moeLayer(cfg: MlaConfig, w: MoeWeights, x: Float64Array): { output: Float64Array; routes: RouteChoice[] } {
  const hidden = cfg.hiddenSize;
  const routes = routeTokens(cfg, w, x);
  const output = w.sharedExperts ? siluMlp(x, w.sharedExperts, hidden) : new Float64Array(x.length);
  routes.forEach((route, t) => {
    const token = row(x, hidden, t);
    route.expertIds.forEach((e, k) => {
      const y = siluMlp(token, w.experts[e]!, hidden);
      for (let i = 0; i < hidden; i++) output[t * hidden + i] = output[t * hidden + i]! + route.weights[k]! * y[i]!;
    });
  });
  return { output, routes };
}
