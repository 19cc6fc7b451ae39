// The end-to-end tests' cluster: the in-process local cluster on the test's device, plus an OpenAI client.
import OpenAI from 'openai';
import { testGpu } from '@latentwire/gpu/testing';
import { startLocalCluster, type LocalCluster, type LocalClusterOptions } from '../../src/index.js';

export interface TestCluster extends LocalCluster {
  readonly client: OpenAI;
  readonly model: string;
}

export async function startCluster(o: Omit<LocalClusterOptions, 'gpu' | 'gateway'> & { readonly admissionWaitMs?: number } = {}): Promise<TestCluster> {
  const cluster = await startLocalCluster({
    ...o, gpu: await testGpu(),
    gateway: { heartbeatTimeoutMs: 2000, reserveTimeoutMs: 5000, admissionQueueMax: 64, admissionWaitMs: o.admissionWaitMs ?? 20_000, requestIdleTimeoutMs: 120_000, prefillAttempts: 2, prefillBackoffMs: 100 },
  });
  const served = (await (await fetch(`${cluster.url}/v1/models`)).json()) as { data: { id: string }[] };
  return { ...cluster, client: new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: 'unused', maxRetries: 0 }), model: served.data[0]!.id };
}
