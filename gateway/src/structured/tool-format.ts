// DeepSeek's tool-call text format (DeepSeek-V2.5 / V3 chat templates), with its marker tokens:
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGUMENTS\n```<｜tool▁call▁end｜>
//   (further calls: \n<｜tool▁call▁begin｜>...) <｜tool▁calls▁end｜>
// and tool results: <｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>RESULT<｜tool▁output▁end｜>...<｜tool▁outputs▁end｜>.
// Here: rendering calls and results into prompt text, the grammar that forces a call (tool_choice required
// or a named function), and parsing calls out of generated text, whole or streamed.
import { jsonSchemaGrammar, type GrammarNode, type GrammarSpec } from '@latentwire/model';

export const CALLS_BEGIN = '<｜tool▁calls▁begin｜>';
export const CALLS_END = '<｜tool▁calls▁end｜>';
export const CALL_BEGIN = '<｜tool▁call▁begin｜>';
export const CALL_END = '<｜tool▁call▁end｜>';
export const SEP = '<｜tool▁sep｜>';
export const OUTPUTS_BEGIN = '<｜tool▁outputs▁begin｜>';
export const OUTPUTS_END = '<｜tool▁outputs▁end｜>';
export const OUTPUT_BEGIN = '<｜tool▁output▁begin｜>';
export const OUTPUT_END = '<｜tool▁output▁end｜>';

export interface ToolFunction {
  readonly name: string;
  readonly description?: string | null | undefined;
  readonly parameters?: Record<string, unknown> | null | undefined;
  readonly strict?: boolean | null | undefined;
}

export interface ToolCall {
  readonly id: string;
  readonly name: string;
  /** JSON text, as OpenAI returns it. */
  readonly arguments: string;
}

const callText = (c: { name: string; arguments: string }) => `${CALL_BEGIN}function${SEP}${c.name}\n\`\`\`json\n${c.arguments}\n\`\`\`${CALL_END}`;

/** An assistant turn's tool calls as the model writes them. */
export function renderToolCalls(calls: readonly { name: string; arguments: string }[]): string {
  return `${CALLS_BEGIN}${calls.map(callText).join('\n')}${CALLS_END}`;
}

/** Consecutive tool results as the model reads them. */
export function renderToolOutputs(outputs: readonly string[]): string {
  return `${OUTPUTS_BEGIN}${outputs.map((o) => `${OUTPUT_BEGIN}${o}${OUTPUT_END}`).join('\n')}${OUTPUTS_END}`;
}

/** The tools section of the system prompt, as DeepSeek-V2.5's chat template writes it. */
export function renderToolsSystemPrompt(tools: readonly ToolFunction[]): string {
  const list = tools.map((f) => `- \`${f.name}\`:\n\`\`\`json\n${JSON.stringify({ name: f.name, description: f.description ?? '', parameters: f.parameters ?? { type: 'object', properties: {} } })}\n\`\`\``);
  return `## Tools\n\n### Function\n\nYou have the following functions available:\n\n${list.join('\n')}`;
}

/**
 * The grammar of one call to one of `tools` (its arguments valid against that function's parameters), in
 * DeepSeek's format, for tool_choice required or a named function. Throws UnsupportedSchemaError for
 * parameters outside the supported schema subset.
 */
export function toolCallGrammar(tools: readonly ToolFunction[]): GrammarSpec {
  const lit = (s: string): GrammarNode => ({ t: 'lit', options: [s] });
  return {
    root: {
      t: 'seq',
      parts: [
        lit(`${CALLS_BEGIN}${CALL_BEGIN}function${SEP}`),
        {
          t: 'choice',
          // "name\n" keeps the options prefix-free (names have no newline)
          options: tools.map((f) => [
            `${f.name}\n\`\`\`json\n`,
            { t: 'seq', parts: [jsonSchemaGrammar(f.parameters ?? { type: 'object' }, { strict: f.strict === true }).root, lit(`\n\`\`\`${CALL_END}`)] },
          ] as const),
        },
        lit(CALLS_END),
      ],
    },
  };
}

let callCounter = 0;
const newCallId = () => `call_${Date.now().toString(36)}${(callCounter++ % 1e6).toString(36)}${Math.random().toString(36).slice(2, 8)}`;

const CALL_RE = new RegExp(`${esc(CALL_BEGIN)}(\\w+)${esc(SEP)}([^\\n]*)\\n\`\`\`json\\n([\\s\\S]*?)\\n\`\`\`${esc(CALL_END)}`, 'g');
function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Text → content and tool calls. The content is the text before CALLS_BEGIN (null when empty); calls are the
 * well-formed ones after it. Text without a complete call is all content.
 */
export function parseToolCalls(text: string): { content: string | null; calls: ToolCall[] } {
  const at = text.indexOf(CALLS_BEGIN);
  if (at < 0) return { content: text, calls: [] };
  const calls: ToolCall[] = [];
  for (const m of text.slice(at).matchAll(CALL_RE)) calls.push({ id: newCallId(), name: m[2]!.trim(), arguments: m[3]! });
  if (calls.length === 0) return { content: text, calls: [] };
  const content = text.slice(0, at);
  return { content: content === '' ? null : content, calls };
}

/**
 * Streaming: passes text through until CALLS_BEGIN may be starting (a suffix that is a prefix of it is held
 * back), then keeps everything for parseToolCalls at the end.
 */
export class ToolCallStream {
  private held = '';
  private inCalls = false;
  private all = '';

  /** Text to send now as content. */
  push(text: string): string {
    this.all += text;
    if (this.inCalls) return '';
    const buf = this.held + text;
    const at = buf.indexOf(CALLS_BEGIN);
    if (at >= 0) {
      this.inCalls = true;
      this.held = '';
      return buf.slice(0, at);
    }
    let keep = 0;
    for (let k = Math.min(CALLS_BEGIN.length - 1, buf.length); k > 0; k--) {
      if (CALLS_BEGIN.startsWith(buf.slice(buf.length - k))) { keep = k; break; }
    }
    this.held = buf.slice(buf.length - keep);
    return buf.slice(0, buf.length - keep);
  }

  /** At the end: content still to send and the calls. */
  finish(): { content: string; calls: ToolCall[] } {
    if (!this.inCalls) {
      const rest = this.held;
      this.held = '';
      return { content: rest, calls: [] };
    }
    const { calls } = parseToolCalls(this.all);
    if (calls.length > 0) return { content: '', calls };
    // markers but no complete call: the text after CALLS_BEGIN was never sent
    return { content: this.all.slice(this.all.indexOf(CALLS_BEGIN)), calls: [] };
  }
}
