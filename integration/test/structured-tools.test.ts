// Structured output and tools end to end, through the official `openai` client against a real cluster (nats,
// redis, prefill node, decode node, the GPU's token-mask kernel on this machine's WebGPU device), on the tiny
// random model: its text is gibberish, so the grammar mask is the only thing that makes the output valid.
// The first token is sampled on the prefill node under the grammar's first mask, the rest on the decode node.
//   - response_format json_schema (nested objects, enums, arrays, numbers) and json_object: every output parses
//     (and validates against its schema with ajv), streamed and not, greedy and sampled;
//   - tools: tool_choice required / a named function forces a call whose arguments validate against the
//     function's parameters; its result goes back as a `tool` message; the next answer is a normal one.
import test from 'ava';
import { Ajv } from 'ajv';
import type OpenAI from 'openai';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;
test.before(async () => {
  cluster = await startCluster({ decodeNodes: 1, pageSize: 16, numPages: 160, maxBatch: 4 });
});
test.after.always(async () => {
  await cluster?.stop();
});

const ajv = new Ajv();
const SCHEMAS: Record<string, Record<string, unknown>> = {
  nested: {
    type: 'object',
    properties: {
      user: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'], additionalProperties: false },
      active: { type: 'boolean' },
    },
    required: ['user', 'active'],
    additionalProperties: false,
  },
  enums: { type: 'object', properties: { color: { enum: ['red', 'green', 'blue'] }, level: { enum: [1, 2, 3] } }, required: ['color', 'level'], additionalProperties: false },
  arrays: { type: 'object', properties: { tags: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 3 } }, required: ['tags'], additionalProperties: false },
  numbers: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' }, n: { type: 'integer' } }, required: ['x', 'y', 'n'], additionalProperties: false },
};
const messages = [{ role: 'user' as const, content: 'Describe it as JSON.' }];

async function streamText(body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming): Promise<{ text: string; finish: string | null }> {
  let text = '';
  let finish: string | null = null;
  for await (const c of await cluster.client.chat.completions.create({ ...body, stream: true })) {
    text += c.choices[0]?.delta.content ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  return { text, finish };
}

test('json_schema: every output parses and validates against its schema, streamed and not, greedy and sampled', async (t) => {
  const { client, model } = cluster;
  await Promise.all(Object.entries(SCHEMAS).map(async ([name, schema], i) => {
    const body = {
      model, messages, max_tokens: 48, temperature: i % 2 === 0 ? 0 : 1, seed: i,
      response_format: { type: 'json_schema' as const, json_schema: { name, schema, strict: true } },
    };
    const whole = await client.chat.completions.create(body);
    const streamed = await streamText(body);
    for (const [how, text, finish] of [['whole', whole.choices[0]!.message.content ?? '', whole.choices[0]!.finish_reason], ['streamed', streamed.text, streamed.finish]] as const) {
      t.log(`${name} (${how}): ${text}`);
      t.is(finish, 'stop', `${name} ${how} closes within max_tokens`);
      const value = JSON.parse(text) as unknown;
      t.true(ajv.validate(schema, value), `${name} ${how}: ${text}: ${ajv.errorsText()}`);
    }
    t.is(streamed.text, whole.choices[0]!.message.content ?? "", `${name}: the stream is the same output (same seed)`);
  }));
});

test('json_schema with n = 3: every choice runs its own grammar state and validates', async (t) => {
  const { client, model } = cluster;
  const schema = SCHEMAS['enums']!;
  const r = await client.chat.completions.create({
    model, messages, max_tokens: 32, temperature: 1, seed: 11, n: 3,
    response_format: { type: 'json_schema', json_schema: { name: 'enums', schema, strict: true } },
  });
  t.is(r.choices.length, 3);
  for (const c of r.choices) {
    const text = c.message.content ?? '';
    t.is(c.finish_reason, 'stop', `choice ${c.index}: ${text}`);
    t.true(ajv.validate(schema, JSON.parse(text) as unknown), `choice ${c.index}: ${text}: ${ajv.errorsText()}`);
  }
});

test('json_object: the output is a JSON object', async (t) => {
  const { client, model } = cluster;
  for (const seed of [1, 2]) {
    const r = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 1, seed, response_format: { type: 'json_object' } });
    const text = r.choices[0]!.message.content ?? '';
    t.log(text);
    const v = JSON.parse(text) as unknown;
    t.true(typeof v === 'object' && v !== null && !Array.isArray(v), text);
  }
});

const weather: OpenAI.Chat.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['c', 'f'] }, days: { type: 'integer' } }, required: ['city', 'unit', 'days'], additionalProperties: false },
  },
};
const clock: OpenAI.Chat.ChatCompletionTool = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] } } };
const validateWeather = ajv.compile(weather.type === 'function' ? weather.function.parameters! : {});

for (const stream of [false, true]) {
  test(`tools round trip (${stream ? 'streamed' : 'whole'}): a forced call validates, its result goes back, the answer is text`, async (t) => {
    const { client, model } = cluster;
    const ask: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = { model, messages: ask, tools: [clock, weather], max_tokens: 320, temperature: 1, seed: stream ? 5 : 6 };
    let call: { id: string; name: string; arguments: string };
    let finish: string | null = null;
    if (!stream) {
      const r = await client.chat.completions.create({ ...first, tool_choice: { type: 'function', function: { name: 'get_weather' } } });
      finish = r.choices[0]!.finish_reason;
      const tc = r.choices[0]!.message.tool_calls?.[0];
      t.truthy(tc, JSON.stringify(r.choices[0]));
      t.is(r.choices[0]!.message.tool_calls!.length, 1);
      call = tc!.type === 'function' ? { id: tc!.id, name: tc!.function.name, arguments: tc!.function.arguments } : { id: '', name: '', arguments: '' };
    } else {
      const acc: { id: string; name: string; arguments: string }[] = [];
      for await (const c of await client.chat.completions.create({ ...first, tool_choice: 'required', tools: [weather], stream: true })) {
        for (const tc of c.choices[0]?.delta.tool_calls ?? []) {
          acc[tc.index] ??= { id: '', name: '', arguments: '' };
          acc[tc.index]!.id += tc.id ?? '';
          acc[tc.index]!.name += tc.function?.name ?? '';
          acc[tc.index]!.arguments += tc.function?.arguments ?? '';
        }
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      t.is(acc.length, 1);
      call = acc[0]!;
    }
    t.log(`call: ${call.name}(${call.arguments})`);
    t.is(finish, 'tool_calls');
    t.is(call.name, 'get_weather');
    t.true(validateWeather(JSON.parse(call.arguments)), `${call.arguments}: ${ajv.errorsText(validateWeather.errors)}`);
    // the result goes back as a tool message; the answer (tool_choice auto by default) is text from the random model
    const second = await client.chat.completions.create({
      model, tools: [weather], max_tokens: 12, temperature: 0,
      messages: [
        ...ask,
        { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }] },
        { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21}' },
      ],
    });
    const answer = second.choices[0]!;
    t.log(`answer: ${JSON.stringify(answer.message.content)} (${answer.finish_reason})`);
    t.true(answer.finish_reason === 'stop' || answer.finish_reason === 'length');
    t.is(typeof answer.message.content, 'string');
    t.falsy(answer.message.tool_calls);
  });
}
