export { GrammarError, validateGrammarSpec, type GrammarNode, type GrammarProp, type GrammarSpec } from './spec.js';
export { ByteAutomaton, type Frame, type Stack } from './automaton.js';
export { GrammarCache, GrammarState, TokenGrammar, type GrammarVocabulary } from './token-grammar.js';
export { jsonSchemaGrammar, JSON_OBJECT_GRAMMAR, UnsupportedSchemaError, type SchemaOptions } from './json-schema.js';
export { grammarVocabulary, tokenBytes } from './vocabulary.js';
