export { startLocalCluster, type LocalCluster, type LocalClusterOptions, type DecodeNodeHandle } from './local-cluster.js';
