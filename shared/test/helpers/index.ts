// Test helpers other workspaces' tests use too (decode-node's engine tests build random checkpoints).
export * from './gpu.js';
export { FIXTURE_DIR, readFixtureJson, tempDir, copyFixture } from './model-fixture.js';
export { writeRandomCheckpoint, PRESETS, type PresetName, type RandomCheckpoint } from './random-checkpoint.js';
export { startNatsServer } from './nats-server.js';
export { startRedisServer } from './redis-server.js';
