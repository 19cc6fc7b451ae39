// Request fields of structured output and tools on /v1/chat/completions (OpenAI's shapes): response_format,
// tools, tool_choice, and the messages that carry tool calls and results.
import { z } from 'zod';

const jsonSchema = z.record(z.string(), z.unknown());

export const responseFormatSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text') }),
  z.strictObject({ type: z.literal('json_object') }),
  z.strictObject({
    type: z.literal('json_schema'),
    json_schema: z.strictObject({
      name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'expected 1 to 64 characters of a-z, A-Z, 0-9, _ and -'),
      description: z.string().nullish(),
      schema: jsonSchema.nullish(),
      strict: z.boolean().nullish(),
    }),
  }),
], { error: "expected {\"type\": \"text\"}, {\"type\": \"json_object\"} or {\"type\": \"json_schema\", \"json_schema\": {...}}" });

const functionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'function names are 1 to 64 characters of a-z, A-Z, 0-9, _ and -');

export const toolSchema = z.strictObject({
  type: z.literal('function'),
  function: z.strictObject({
    name: functionName,
    description: z.string().nullish(),
    parameters: jsonSchema.nullish(),
    strict: z.boolean().nullish(),
  }),
});

export const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: functionName }) }),
], { error: "expected 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}" });

/** An assistant message's tool_calls, as OpenAI returns them. */
export const messageToolCallsSchema = z.array(z.strictObject({
  id: z.string(),
  type: z.literal('function'),
  function: z.strictObject({ name: functionName, arguments: z.string() }),
}));

export type ResponseFormat = z.infer<typeof responseFormatSchema>;
export type Tool = z.infer<typeof toolSchema>;
export type ToolChoice = z.infer<typeof toolChoiceSchema>;
export type MessageToolCalls = z.infer<typeof messageToolCallsSchema>;
