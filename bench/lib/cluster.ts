// The serving benchmarks' cluster: integration's in-process local cluster (its own nats-server and
// redis-server unless URLs are given) on a device of the bench's own, with the gateway's settings from the
// environment, as a deployed gateway would read them.
import { Gpu } from '@latentwire/gpu';
import { gpuOptionsFromEnv } from '@latentwire/gpu';
import type { KvDtype } from '@latentwire/protocol';
import { clusterSettingsFromEnv } from '@latentwire/gateway';
import { startLocalCluster, type LocalCluster } from '@latentwire/integration';

export interface BenchClusterOptions {
  readonly decodeNodes: number;
  readonly kvDtype: KvDtype;
  readonly pageSize: number;
  readonly numPages: number;
  readonly maxBatch: number;
  readonly maxContext: number;
  /** The decode node's TOKEN_FLUSH_MS. */
  readonly tokenFlushMs: number;
  readonly natsUrl?: string | undefined;
  readonly redisUrl?: string | undefined;
  readonly modelDir?: string | undefined;
}

export interface BenchCluster extends LocalCluster {
  readonly gpu: Gpu;
}

export async function startBenchCluster(o: BenchClusterOptions): Promise<BenchCluster> {
  const gpu = await Gpu.create(gpuOptionsFromEnv());
  const cluster = await startLocalCluster({
    gpu, decodeNodes: o.decodeNodes, kvDtype: o.kvDtype, pageSize: o.pageSize, numPages: o.numPages, maxBatch: o.maxBatch,
    maxContext: o.maxContext, tokenFlushMs: o.tokenFlushMs, natsUrl: o.natsUrl, redisUrl: o.redisUrl, modelDir: o.modelDir,
    gateway: clusterSettingsFromEnv(process.env),
  });
  return {
    ...cluster, gpu,
    async stop() {
      await cluster.stop();
      gpu.dispose();
    },
  };
}
