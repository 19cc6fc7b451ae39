// The real servers a test cluster needs, without the GPU helpers: services that never touch the GPU (the
// gateway) import this entry point, so their test processes never load `webgpu`.
export { startNatsServer } from './nats-server.js';
export { startRedisServer } from './redis-server.js';
