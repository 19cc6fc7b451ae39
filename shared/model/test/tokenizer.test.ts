// Tokenizer, streaming detokenizer and chat template against the fixture's golden ids and strings.
import test from 'ava';
import { ChatTemplate, ChatTemplateError, Tokenizer, loadChatTemplate } from '../src/index.js';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';

interface RefCase {
  prompt: string;
  input_ids: number[];
  greedy_ids: number[];
}
const cases = readFixtureJson<{ cases: RefCase[] }>('reference.json').cases;
const tok = Tokenizer.load(FIXTURE_DIR);
const BOS = '<｜begin▁of▁sentence｜>';
const EOS = '<｜end▁of▁sentence｜>';

/** Streams ids through a detokenizer, returning every piece push() and flush() gave. */
function stream(ids: readonly number[]): string[] {
  const d = tok.createDetokenizer();
  return [...ids.map((id) => d.push(id)), d.flush()];
}

test('special tokens come from tokenizer_config.json', (t) => {
  t.is(tok.bosToken, BOS);
  t.is(tok.eosToken, EOS);
  t.is(tok.bosTokenId, 0);
  t.is(tok.eosTokenId, 1);
  t.true(tok.addBosToken);
});

test('every reference case encodes to its input_ids ([bos] + encode(prompt))', (t) => {
  t.true(cases.length >= 3);
  for (const c of cases) {
    t.deepEqual(tok.encode(c.prompt), c.input_ids, JSON.stringify(c.prompt));
    t.deepEqual(tok.encode(c.prompt, { addBos: false }), c.input_ids.slice(1));
  }
});

test('decode round-trips every prompt', (t) => {
  for (const c of cases) {
    t.is(tok.decode(c.input_ids.slice(1)), c.prompt);
    t.is(tok.decode(c.input_ids), BOS + c.prompt);
    t.is(tok.decode(c.input_ids, { skipSpecialTokens: true }), c.prompt);
  }
});

test('the streaming detokenizer equals full decode on every case (prompt then greedy tokens)', (t) => {
  for (const c of cases) {
    const ids = [...c.input_ids, ...c.greedy_ids];
    t.is(stream(ids).join(''), tok.decode(ids));
    // Prompts are valid text, so no piece may carry a replacement character.
    const pieces = stream(c.input_ids.slice(1));
    t.is(pieces.join(''), c.prompt);
    t.false(pieces.some((p) => p.includes('\uFFFD')));
  }
});

test('the streaming detokenizer never emits half a multi-byte character', (t) => {
  for (const text of ['héllo 世界 🙂', '🙂🙂 naïve café — 日本語のテキスト', 'a\u0301 \u{1F468}\u200D\u{1F469}\u200D\u{1F467}']) {
    const ids = tok.encode(text, { addBos: false });
    const pieces = stream(ids);
    t.is(pieces.join(''), text);
    t.is(tok.decode(ids), text);
    t.false(pieces.some((p) => p.includes('\uFFFD')), JSON.stringify(pieces));
    // Byte-level BPE split at least one character over several tokens, so something was held back.
    t.true(pieces.slice(0, -1).some((p) => p === ''));
  }
});

test('flush gives back a trailing incomplete character as full decode would', (t) => {
  const ids = tok.encode('🙂', { addBos: false });
  t.true(ids.length > 1);
  const cut = ids.slice(0, -1);
  const pieces = stream(cut);
  t.is(pieces.join(''), tok.decode(cut));
  t.true(pieces.slice(0, -1).every((p) => p === ''));
});

const conversation = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is 2 + 2?' },
  { role: 'assistant', content: '4.' },
  { role: 'user', content: 'And 3 + 3?' },
];

test('chat template golden: system + user + assistant + user with a generation prompt', (t) => {
  const chat = loadChatTemplate(FIXTURE_DIR, tok)!;
  t.truthy(chat);
  const rendered = chat.render(conversation, { addGenerationPrompt: true });
  t.is(
    rendered,
    `${BOS}You are a helpful assistant.\n\nUser: What is 2 + 2?\n\nAssistant: 4.${EOS}User: And 3 + 3?\n\nAssistant:`,
  );
  t.is(chat.render(conversation), rendered.slice(0, -'Assistant:'.length));
});

test('chat template golden: continueFinalMessage leaves the final assistant message open (no eos after it)', (t) => {
  const chat = loadChatTemplate(FIXTURE_DIR, tok)!;
  const prefill = [...conversation, { role: 'assistant', content: 'The answer is' }];
  const rendered = chat.render(prefill, { continueFinalMessage: true });
  t.is(rendered, `${BOS}You are a helpful assistant.\n\nUser: What is 2 + 2?\n\nAssistant: 4.${EOS}User: And 3 + 3?\n\nAssistant: The answer is`);
  // the closed form differs only by the end of turn
  t.is(chat.render(prefill), `${rendered}${EOS}`);
  const ids = chat.encode(prefill, { continueFinalMessage: true });
  t.deepEqual(ids, tok.encode(rendered, { addBos: false }));
  t.not(ids.at(-1), 1);
  t.is(ids.filter((id) => id === 1).length, 1); // only the earlier, closed assistant turn's eos
  // golden ids: the closed turn is these plus eos (1)
  const short = [{ role: 'user', content: 'What is 2 + 2?' }, { role: 'assistant', content: 'The answer is' }];
  const open = [0, 54, 483, 27, 222, 56, 73, 273, 309, 222, 19, 222, 12, 222, 19, 32, 200, 200, 34, 395, 74, 280, 66, 299, 27, 439, 400, 84, 88, 275, 309];
  t.deepEqual(chat.encode(short, { continueFinalMessage: true }), open);
  t.deepEqual(chat.encode(short), [...open, 1]);
  // a content that also occurs in the eos string, and an empty one, are cut in the right place
  t.true(chat.render([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 's' }], { continueFinalMessage: true }).endsWith('\n\nAssistant: s'));
  t.is(chat.render([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: '' }], { continueFinalMessage: true }), `${BOS}User: Hi\n\nAssistant: `);
  t.throws(() => chat.render(prefill, { continueFinalMessage: true, addGenerationPrompt: true }), { instanceOf: ChatTemplateError });
  // a template that never writes the final message cannot continue it
  const dropsAssistant = new ChatTemplate("{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}", tok);
  t.throws(() => dropsAssistant.render(prefill, { continueFinalMessage: true }), { instanceOf: ChatTemplateError, message: /exactly once/ });
});

test('chat ids start with exactly one bos (the template writes it; encode does not add another)', (t) => {
  const chat = loadChatTemplate(FIXTURE_DIR, tok)!;
  const ids = chat.encode(conversation, { addGenerationPrompt: true });
  t.is(ids[0], 0);
  t.is(ids.filter((id) => id === 0).length, 1);
  t.is(ids.filter((id) => id === 1).length, 1);
  t.is(tok.decode(ids), chat.render(conversation, { addGenerationPrompt: true }));
});

test('a template that raises gives a ChatTemplateError', (t) => {
  const chat = new ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}", tok);
  t.throws(() => chat.render([{ role: 'assistant', content: 'x' }]), { instanceOf: ChatTemplateError, message: /first message must be from the user/ });
});
