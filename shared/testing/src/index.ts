// Dev-only helpers for every workspace's tests and benches: real server launchers, the tiny fixture,
// random checkpoints, seeded data. Depends on no other latentwire package, so any package's tests can use it.
export { FIXTURE_DIR, TEST_FIXTURES_DIR, readFixtureJson, readTestFixture, tempDir, copyFixture, writeRawSafetensors, type RawTensor } from './helpers/model-fixture.js';
export { writeRandomCheckpoint, PRESETS, type PresetName, type RandomCheckpoint } from './helpers/random-checkpoint.js';
export { startNatsServer } from './helpers/nats-server.js';
export { startRedisServer } from './helpers/redis-server.js';
export { seededRandom } from './helpers/seeded-random.js';
export { rng, randomArray, maxAbsDiff } from './helpers/random-data.js';
export { bf16Bits, bf16BitsToNumber, roundToBf16 } from './helpers/bf16.js';
export { writeSafetensors, storedValue, f16Bits as f16BitsOf, f16BitsToNumber, type TensorToWrite } from './helpers/safetensors-writer.js';
export { freePort, pollUntil, runEntry, runWithBadEnv, startEntry, type EntryResult } from './helpers/run-entry.js';
export { readFp8Tables, FP8_EDGE_BITS, type Fp8Table } from './helpers/fp8-tables.js';
