// Model listing and health, through the official client where it has a call for it.
import test from 'ava';
import OpenAI from 'openai';
import { pino } from 'pino';
import { startGateway } from '../../src/index.js';
import { MODEL_DIR, MODEL_ID, REFERENCE } from './helpers/fixture.js';
import { startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const backend = (): ReplayBackend => new ReplayBackend({ script: () => REFERENCE[0]!.greedy_ids, maxRequestTokens: 4096 });

test('models - the list has the served model, owned by latentwire', async (t) => {
  const { client } = await startTestGateway(t, backend());
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  t.is(models.length, 1);
  t.like(models[0], { id: MODEL_ID, object: 'model', owned_by: 'latentwire', max_model_len: 2048 });
  t.true(Number.isInteger(models[0]!.created));
  t.deepEqual(await client.models.retrieve(MODEL_ID), models[0]);
});

test('models - an unknown model id is a 404 model_not_found', async (t) => {
  const { client } = await startTestGateway(t, backend());
  const err = await t.throwsAsync(client.models.retrieve('gpt-4o'), { instanceOf: OpenAI.NotFoundError });
  t.like(err!.error, { code: 'model_not_found' });
});

test('models - a served name with a slash, and the folder name by default (opened from modelDir)', async (t) => {
  for (const [servedModelName, id] of [['deepseek-ai/DeepSeek-V3', 'deepseek-ai/DeepSeek-V3'], [undefined, 'tiny-deepseek-v2']] as const) {
    const gw = await startGateway({ modelDir: MODEL_DIR, servedModelName, backend: backend(), logger: pino({ level: 'silent' }) });
    t.teardown(() => gw.close());
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'test', maxRetries: 0 });
    t.is((await client.models.retrieve(id)).id, id);
    const raw = await fetch(`${gw.url}/v1/models/${id}`);
    t.is(raw.status, 200);
    const r = await client.completions.create({ model: id, prompt: REFERENCE[0]!.prompt, max_tokens: 2 });
    t.is(r.model, id);
  }
});

test('models - health reports the model and the backend limit; unknown URLs are OpenAI-style 404s', async (t) => {
  const { gw } = await startTestGateway(t, backend());
  const health = await fetch(`${gw.url}/health`);
  t.is(health.status, 200);
  t.deepEqual(await health.json(), { status: 'ok', model: MODEL_ID, max_request_tokens: 4096, max_prompt_tokens: null });
  t.truthy(health.headers.get('x-request-id'));
  const missing = await fetch(`${gw.url}/v1/embeddings`, { method: 'POST' });
  t.is(missing.status, 404);
  t.deepEqual(await missing.json(), { error: { message: 'Invalid URL (POST /v1/embeddings)', type: 'invalid_request_error', param: null, code: null } });
});
