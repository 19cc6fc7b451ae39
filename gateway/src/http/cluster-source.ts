// What the HTTP layer needs of an operators' cluster view, so the app stays independent of how the cluster
// is built: where to report each request's token timings per decode node, and the snapshot GET /v1/cluster
// returns.

/** This gateway's requests, as it times them, per decode node. */
export interface NodeTimings {
  /** The first `tokens` of a request arrived ttftMs after it did (tokens after the first: an inter-token gap of 0). */
  firstTokens(nodeId: string, ttftMs: number, tokens: number): void;
  /** `tokens` more arrived, gapMs apart on average. */
  laterTokens(nodeId: string, gapMs: number, tokens: number): void;
}

export interface ClusterSource extends NodeTimings {
  /** The longest window a snapshot covers (ms). */
  readonly windowMs: number;
  /** A JSON-ready description of the cluster; rates and percentiles over the last windowMs. */
  snapshot(windowMs: number): Promise<object>;
}
