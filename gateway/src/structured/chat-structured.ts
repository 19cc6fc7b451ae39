// response_format and tools on /v1/chat/completions, between the parsed body and the generation:
//   - the messages the chat template sees: a template that renders tool turns itself (it mentions `tool_calls`)
//     gets them as OpenAI sends them, and one that renders tool definitions (its `tools` variable) gets `tools`;
//     otherwise (the fixture's template: role and content only) tools go into the system prompt and tool calls
//     and results into the messages' text, in DeepSeek's format (tool-format.ts);
//   - the grammar the sampler obeys (constrained decoding, WireSampling.grammar): response_format json_object /
//     json_schema, or a forced call for tool_choice 'required' or a named function;
//   - the response shape: tool calls parsed out of the text (message.tool_calls, delta.tool_calls,
//     finish_reason 'tool_calls').
// Refusals are 400s naming the field (an unsupported schema feature by name and place).
import { GrammarCache, GrammarError, grammarVocabulary, jsonSchemaGrammar, JSON_OBJECT_GRAMMAR, UnsupportedSchemaError, type GrammarSpec, type ModelFolder } from '@latentwire/model';
import { ApiError, invalidParam } from '../http/api-error.js';
import type { ResolvedGeneration } from '../http/generation-params.js';
import type { ChatCompletionBody } from '../http/request-schema.js';
import type { ResponseShape } from '../http/serve-completion.js';
import { parseToolCalls, renderToolCalls, renderToolOutputs, renderToolsSystemPrompt, ToolCallStream, toolCallGrammar, type ToolCall, type ToolFunction } from './tool-format.js';

type Messages = ChatCompletionBody['messages'];

export interface StructuredChat {
  /** The messages to render with the chat template. */
  readonly messages: Messages;
  /** OpenAI `tools` for a template that renders them itself (passed as its `tools` variable). */
  readonly templateTools?: readonly object[];
  readonly grammar: GrammarSpec | null;
  /** Parse tool calls out of the output (tools given and tool_choice not 'none'). */
  readonly parseTools: boolean;
  readonly parallelToolCalls: boolean;
}

const textOf = (c: Messages[number]['content']): string => (c == null ? '' : typeof c === 'string' ? c : c.map((p) => p.text).join('\n'));

function schemaError(err: unknown, param: string): never {
  if (err instanceof UnsupportedSchemaError) {
    throw new ApiError(400, `Unsupported JSON schema feature '${err.feature}' at ${err.at} in '${param}'${err.message.includes('(') ? ` ${err.message.slice(err.message.indexOf('('))}` : ''}. Supported: type (object, array, string, number, integer, boolean, null), properties, required, additionalProperties (true/false), enum, const, items, minItems, maxItems.`, param, 'unsupported_schema');
  }
  if (err instanceof GrammarError) throw invalidParam(param, `Invalid value for '${param}': ${err.message}`);
  throw err;
}

/** What the model's chat template renders itself: tool turns (`tool_calls`, tool messages) and tool definitions (`tools`). */
export function templateToolSupport(source: string | null | undefined): { turns: boolean; tools: boolean } {
  if (!source) return { turns: false, tools: false };
  return { turns: source.includes('tool_calls'), tools: /(^|[^\w'"])tools([^\w'"]|$)/.test(source) };
}

export function structuredChat(body: ChatCompletionBody, template?: { readonly source: string } | null): StructuredChat {
  const tools = (body.tools ?? []).map((t): ToolFunction => t.function);
  const choice = body.tool_choice ?? (tools.length > 0 ? 'auto' : 'none');
  if (tools.length === 0 && choice !== 'none' && choice !== 'auto') {
    throw invalidParam('tool_choice', "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.");
  }
  const names = new Set<string>();
  tools.forEach((f, i) => {
    if (names.has(f.name)) throw invalidParam(`tools[${i}].function.name`, `Invalid value for 'tools[${i}].function.name': '${f.name}' appears twice.`);
    names.add(f.name);
  });

  let grammar: GrammarSpec | null = null;
  const rf = body.response_format;
  if (rf && rf.type !== 'text') {
    try {
      grammar = rf.type === 'json_object' ? JSON_OBJECT_GRAMMAR : jsonSchemaGrammar(rf.json_schema.schema ?? {}, { strict: rf.json_schema.strict === true });
    } catch (err) {
      schemaError(err, 'response_format.json_schema.schema');
    }
  }
  if (choice === 'required' || typeof choice === 'object') {
    if (grammar) throw invalidParam('response_format', "'response_format' cannot be combined with a 'tool_choice' that forces a tool call.");
    const forced = typeof choice === 'object' ? tools.filter((f) => f.name === choice.function.name) : tools;
    if (forced.length === 0) throw invalidParam('tool_choice', `Invalid value for 'tool_choice': no function named '${(choice as { function: { name: string } }).function.name}' in 'tools'.`);
    try {
      grammar = toolCallGrammar(forced);
    } catch (err) {
      const i = tools.findIndex((f) => f.name === (err instanceof UnsupportedSchemaError ? forcedNameOf(forced, err) : ''));
      schemaError(err, i >= 0 ? `tools[${i}].function.parameters` : 'tools');
    }
  }
  const renderTools = tools.length > 0 && choice !== 'none';
  const native = templateToolSupport(template?.source);
  const messages = native.turns ? body.messages : toolMessages(body.messages);
  const withTools = renderTools && !native.tools ? withToolsPrompt(messages, tools) : messages;
  return {
    messages: withTools,
    ...(renderTools && native.tools ? { templateTools: body.tools! } : {}),
    grammar, parseTools: renderTools, parallelToolCalls: body.parallel_tool_calls !== false,
  };
}

/** The forced function whose parameters raised err (the first one that does). */
function forcedNameOf(forced: readonly ToolFunction[], _err: UnsupportedSchemaError): string {
  for (const f of forced) {
    try {
      jsonSchemaGrammar(f.parameters ?? { type: 'object' }, { strict: f.strict === true });
    } catch {
      return f.name;
    }
  }
  return '';
}

/** Messages with tool calls and tool results written out as text (system / user / assistant only). */
function toolMessages(messages: Messages): Messages {
  const out: { role: Messages[number]['role']; content: string }[] = [];
  for (const m of messages) {
    if (m.role === 'tool') {
      const prev = out.at(-1) as ({ role: string; content: string; outputs?: string[] } | undefined);
      if (prev?.outputs) {
        prev.outputs.push(textOf(m.content));
        prev.content = renderToolOutputs(prev.outputs);
      } else {
        const outputs = [textOf(m.content)];
        out.push(Object.assign({ role: 'user' as const, content: renderToolOutputs(outputs) }, { outputs }));
      }
      continue;
    }
    const calls = m.role === 'assistant' ? (m.tool_calls ?? []) : [];
    out.push({ role: m.role, content: textOf(m.content) + (calls.length > 0 ? renderToolCalls(calls.map((c) => c.function)) : '') });
  }
  return out.map(({ role, content }) => ({ role, content })) as Messages;
}

/** The tools section appended to the first system message, or a new system message in front. */
function withToolsPrompt(messages: Messages, tools: readonly ToolFunction[]): Messages {
  const clean = [...messages];
  const prompt = renderToolsSystemPrompt(tools);
  const sys = clean.findIndex((m) => m.role === 'system' || m.role === 'developer');
  if (sys === 0) clean[0] = { role: clean[0]!.role, content: `${textOf(clean[0]!.content)}\n\n${prompt}` };
  else clean.unshift({ role: 'system', content: prompt });
  return clean as Messages;
}

type VocabFolder = Pick<ModelFolder, 'tokenizer' | 'config' | 'generation'>;
const grammarCaches = new WeakMap<VocabFolder, GrammarCache>();
const grammarsOf = (folder: VocabFolder): GrammarCache => {
  let g = grammarCaches.get(folder);
  if (!g) grammarCaches.set(folder, (g = new GrammarCache(grammarVocabulary(folder), 16)));
  return g;
};

/**
 * The generation with its grammar; a max_tokens below the tokens of the grammar's shortest complete output
 * (counted over the model's vocabulary) is a 400, so constrained output always closes within max_tokens.
 */
export function withGrammar(gen: ResolvedGeneration, grammar: GrammarSpec | null, folder: VocabFolder, param = 'max_tokens'): ResolvedGeneration {
  if (!grammar) return gen;
  // the grammar ends the output with EOS, which ignore_eos would decode past
  if (gen.request.ignoreEos) throw invalidParam('ignore_eos', "'ignore_eos' cannot be combined with 'response_format' or a 'tool_choice' that forces a tool call.");
  const need = grammarsOf(folder).get(grammar).minTokens();
  if (gen.request.maxTokens < need) {
    throw invalidParam(param, `Invalid value for '${param}': the response format needs at least ${need} tokens for its shortest complete output, but only ${gen.request.maxTokens} are allowed.`);
  }
  return { ...gen, request: { ...gen.request, sampling: { ...gen.request.sampling, grammar: { root: grammar.root, maxTokens: gen.request.maxTokens } } } };
}

const openAiCalls = (calls: readonly ToolCall[]) =>
  calls.map((c, index) => ({ index, id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } }));

/** The chat response shape with tool calls parsed out of the text (per request: a stream keeps state). */
export function toolCallShape(base: ResponseShape, s: Pick<StructuredChat, 'parseTools' | 'parallelToolCalls'>): ResponseShape {
  if (!s.parseTools) return base;
  const limit = (calls: ToolCall[]) => (s.parallelToolCalls ? calls : calls.slice(0, 1));
  const stream = new ToolCallStream();
  return {
    ...base,
    deltaChoice: (text, logprobs) => ({ index: 0, delta: { content: stream.push(text) }, logprobs, finish_reason: null }),
    finishChoice: (reason) => {
      const f = stream.finish();
      const calls = limit(f.calls);
      const content = f.content !== '' ? { content: f.content } : {};
      if (calls.length === 0) return { index: 0, delta: content, logprobs: null, finish_reason: reason };
      return { index: 0, delta: { ...content, tool_calls: openAiCalls(calls) }, logprobs: null, finish_reason: 'tool_calls' };
    },
    fullChoice: (text, reason, logprobs) => {
      const { content, calls } = parseToolCalls(text);
      const kept = limit(calls);
      if (kept.length === 0) return { index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs, finish_reason: reason };
      return {
        index: 0,
        message: { role: 'assistant', content, refusal: null, tool_calls: openAiCalls(kept).map(({ index: _i, ...c }) => c) },
        logprobs,
        finish_reason: 'tool_calls',
      };
    },
  };
}
