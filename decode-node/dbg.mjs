import { loadPrefillModel } from '@latentwire/shared/prefill';
import { FIXTURE_DIR, readFixtureJson, testGpu } from '@latentwire/shared/testing';
import { DecodeModel } from '/work/main/decode-node/dist/src/engine/decode-model.js';
import { DecodeEngine } from '/work/main/decode-node/dist/src/engine/engine.js';
const cases = readFixtureJson('reference.json').cases;
const gpu = await testGpu();
const { folder, model: prefill } = loadPrefillModel(gpu, FIXTURE_DIR);
const dec = await DecodeModel.create(gpu, folder.config, prefill.weights, { maxBatch: 8, maxContext: 160, pageSize: 16, kvDtype: 'bf16', numPages: 80, ropeFreqPrecision: prefill.ropeFreqPrecision });
const engine = new DecodeEngine(dec, prefill, { maxWaiting: 32, leaseMs: 10000 });
const run = (req) => new Promise((res) => { const t = []; engine.submit(req, { onTokens: (x) => t.push(...x), onFinish: (r) => res(t) }); });
const reqs = [...cases.map((c, b) => ({ id: `g-${b}`, promptIds: c.input_ids, maxTokens: 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, eosTokenIds: folder.config.eosTokenIds })),
  ...cases.map((c, b) => ({ id: `s-${b}`, promptIds: c.input_ids, maxTokens: 12 + b, sampling: { temperature: 0.9, topK: 40, topP: 0.95, seed: 1234 + b }, eosTokenIds: folder.config.eosTokenIds }))];
const alone = []; for (const r of reqs) alone.push(await run({ ...r, id: r.id + 'a' }));
const tog = await Promise.all(reqs.map((r) => run({ ...r, id: r.id + 't' })));
for (let i = 0; i < reqs.length; i++) console.log(i, JSON.stringify(alone[i]) === JSON.stringify(tog[i]), JSON.stringify(alone[i]), JSON.stringify(tog[i]));
