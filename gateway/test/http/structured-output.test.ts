// response_format and tools at the HTTP layer, against a replay backend (the real round trip on the tiny model is
// integration/test/structured-tools.test.ts): the grammar sent with the sampling, the 400s (unsupported schema
// features by name, tool_choice without its tool, a max_tokens too small to close the JSON), tools, tool calls
// and tool results rendered into the prompt, and tool calls parsed out of the output, whole and streamed.
import test from 'ava';
import OpenAI from 'openai';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { openModelFolder } from '@latentwire/model';
import { startGateway } from '../../src/index.js';
import { jsonSchemaGrammar, JSON_OBJECT_GRAMMAR } from '@latentwire/model';
import { EOS, MODEL_DIR, MODEL_ID, model } from './helpers/fixture.js';
import { postRaw, startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';
import { renderToolCalls } from '../../src/structured/tool-format.js';

const tok = model().tokenizer;
const ids = (text: string) => tok.encode(text, { addBos: false });
const schema = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city', 'days'], additionalProperties: false };
const weather = { type: 'function' as const, function: { name: 'get_weather', description: 'Weather of a city', parameters: schema } };
const user = [{ role: 'user' as const, content: 'Weather in Paris?' }];

test('structured output - the grammar travels with the sampling (json_schema, json_object, a forced tool call), with max_tokens', async (t) => {
  const backend = new ReplayBackend({ script: () => [...ids('{"city":"a","days":1}'), EOS] });
  const { client } = await startTestGateway(t, backend);
  await client.chat.completions.create({ model: MODEL_ID, messages: user, max_tokens: 50, response_format: { type: 'json_schema', json_schema: { name: 'w', schema, strict: true } } });
  await client.chat.completions.create({ model: MODEL_ID, messages: user, max_tokens: 50, response_format: { type: 'json_object' } });
  await client.chat.completions.create({ model: MODEL_ID, messages: user, max_tokens: 300, tools: [weather], tool_choice: 'required' });
  await client.chat.completions.create({ model: MODEL_ID, messages: user, max_tokens: 50, response_format: { type: 'text' } });
  const g = backend.calls.map((c) => c.request.sampling.grammar);
  t.deepEqual(g[0], { root: jsonSchemaGrammar(schema, { strict: true }).root, maxTokens: 50 });
  t.deepEqual(g[1], { root: JSON_OBJECT_GRAMMAR.root, maxTokens: 50 });
  t.is((g[2]?.root as { t: string }).t, 'seq');
  t.is(g[3], undefined);
});

test('structured output - 400s name the field: unsupported schema features, tool_choice without its tool, max_tokens too small, both forced', async (t) => {
  const backend = new ReplayBackend({ script: () => [EOS] });
  const { base } = await startTestGateway(t, backend);
  const cases: [object, string, RegExp][] = [
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { anyOf: [{ type: 'string' }] } } } } } }, 'response_format.json_schema.schema', /'anyOf' at #\/properties\/a/],
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: 'a+' } } } }, 'response_format.json_schema.schema', /'pattern'/],
    [{ response_format: { type: 'yaml' } }, 'response_format.type', /json_schema/],
    [{ tool_choice: 'required' }, 'tool_choice', /only allowed when 'tools'/],
    [{ tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice', /no function named 'nope'/],
    [{ tools: [{ ...weather, function: { ...weather.function, parameters: { type: 'object', properties: { d: { type: 'string', format: 'date' } } } } }], tool_choice: 'required' }, 'tools[0].function.parameters', /'format'/],
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } }, max_tokens: 10 }, 'max_tokens', /at least 20 tokens/],
    [{ response_format: { type: 'json_object' }, tools: [weather], tool_choice: 'required' }, 'response_format', /cannot be combined/],
    [{ response_format: { type: 'json_object' }, ignore_eos: true }, 'ignore_eos', /cannot be combined/],
  ];
  for (const [extra, param, message] of cases) {
    const r = await postRaw(base, '/chat/completions', JSON.stringify({ model: MODEL_ID, messages: user, ...extra }));
    t.is(r.status, 400, param);
    t.is(r.json.error.param, param, JSON.stringify(r.json.error));
    t.regex(r.json.error.message, message);
  }
  t.is(backend.calls.length, 0);
});

test('tools - tools, assistant tool calls and tool results are rendered into the prompt in DeepSeek format', async (t) => {
  const backend = new ReplayBackend({ script: () => [...ids('Sunny.'), EOS] });
  const { client } = await startTestGateway(t, backend);
  const r = await client.chat.completions.create({
    model: MODEL_ID, max_tokens: 20, tools: [weather],
    messages: [
      { role: 'system', content: 'Be brief.' },
      ...user,
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":1}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: '{"sky":"sunny"}' },
    ],
  });
  t.is(r.choices[0]!.message.content, 'Sunny.');
  t.is(r.choices[0]!.finish_reason, 'stop');
  const prompt = tok.decode([...backend.calls[0]!.request.promptIds]);
  t.true(prompt.includes('Be brief.\n\n## Tools\n\n### Function\n\nYou have the following functions available:\n\n- `get_weather`:'), prompt);
  t.true(prompt.includes(renderToolCalls([{ name: 'get_weather', arguments: '{"city":"Paris","days":1}' }])), prompt);
  t.true(prompt.includes('<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{"sky":"sunny"}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>'), prompt);
});

test('tools - calls in the output become message.tool_calls and streamed delta.tool_calls, finish_reason tool_calls', async (t) => {
  const calls = [{ name: 'get_weather', arguments: '{"city":"Paris","days":2}' }, { name: 'get_weather', arguments: '{"city":"Rome","days":1}' }];
  const backend = new ReplayBackend({ script: () => [...ids(`Let me check.${renderToolCalls(calls)}`), EOS], tokensPerEvent: 3 });
  const { client } = await startTestGateway(t, backend);
  const req = { model: MODEL_ID, messages: user, max_tokens: 1000, tools: [weather] };
  const whole = await client.chat.completions.create(req);
  const c = whole.choices[0]!;
  t.is(c.finish_reason, 'tool_calls');
  t.is(c.message.content, 'Let me check.');
  t.deepEqual(c.message.tool_calls?.map((x) => x.type === 'function' && [x.function.name, x.function.arguments]), calls.map((x) => [x.name, x.arguments]));
  t.true(c.message.tool_calls!.every((x) => /^call_/.test(x.id)));
  // parallel_tool_calls false: the first call only
  const one = await client.chat.completions.create({ ...req, parallel_tool_calls: false });
  t.is(one.choices[0]!.message.tool_calls?.length, 1);
  // streamed: the content before the call as content deltas, the calls as delta.tool_calls
  let content = '';
  const streamed: { name: string; arguments: string }[] = [];
  let finish: string | null = null;
  for await (const chunk of await client.chat.completions.create({ ...req, stream: true })) {
    const ch = chunk.choices[0];
    if (!ch) continue;
    content += ch.delta.content ?? '';
    for (const tc of ch.delta.tool_calls ?? []) {
      streamed[tc.index] ??= { name: '', arguments: '' };
      streamed[tc.index]!.name += tc.function?.name ?? '';
      streamed[tc.index]!.arguments += tc.function?.arguments ?? '';
    }
    finish = ch.finish_reason ?? finish;
  }
  t.is(content, 'Let me check.');
  t.deepEqual(streamed, calls);
  t.is(finish, 'tool_calls');
  // tool_choice none: the text is returned as it is
  const none = await client.chat.completions.create({ ...req, tool_choice: 'none' });
  t.is(none.choices[0]!.finish_reason, 'stop');
  t.true(none.choices[0]!.message.content!.includes('<｜tool▁calls▁begin｜>'));
});

// A DeepSeek-V3-style template that renders tool definitions, assistant tool calls and tool results itself.
const TOOLS_TEMPLATE = "{{ bos_token }}{% if tools %}{{ 'TOOLS:' }}{% for t in tools %}{{ ' ' + t['function']['name'] }}{% endfor %}{{ '\\n' }}{% endif %}"
  + "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n' }}{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
  + "{% elif message['role'] == 'assistant' and 'tool_calls' in message %}{{ '<｜Assistant｜><｜tool▁calls▁begin｜>' }}{% for tool in message['tool_calls'] %}{{ '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n```json\\n' + tool['function']['arguments'] + '\\n```<｜tool▁call▁end｜>' }}{% endfor %}{{ '<｜tool▁calls▁end｜><｜end▁of▁sentence｜>' }}"
  + "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}"
  + "{% elif message['role'] == 'tool' %}{{ '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜><｜tool▁outputs▁end｜>' }}{% endif %}{% endfor %}"
  + "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}";

test('tools - a template that renders tools and tool turns itself gets them as OpenAI sends them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lw-tools-template-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json']) copyFileSync(join(MODEL_DIR, f), join(dir, f));
  symlinkSync(join(MODEL_DIR, 'model.safetensors'), join(dir, 'model.safetensors'));
  const cfg = JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, chat_template: TOOLS_TEMPLATE }));
  const backend = new ReplayBackend({ script: () => [...ids('ok'), EOS] });
  const gw = await startGateway({ model: openModelFolder(dir), servedModelName: MODEL_ID, backend, logger: pino({ level: 'silent' }) });
  t.teardown(() => gw.close());
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'test', maxRetries: 0 });
  const args = '{"city":"Paris","days":1}';
  await client.chat.completions.create({
    model: MODEL_ID, max_tokens: 8, tools: [weather],
    messages: [
      { role: 'system', content: 'Be brief.' },
      ...user,
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: args } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
    ],
  });
  t.is(tok.decode([...backend.calls[0]!.request.promptIds]),
    `<｜begin▁of▁sentence｜>TOOLS: get_weather\nBe brief.\n<｜User｜>Weather in Paris?<｜Assistant｜>${renderToolCalls([{ name: 'get_weather', arguments: args }])}<｜end▁of▁sentence｜>`
    + '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜><｜tool▁outputs▁end｜><｜Assistant｜>');
});
