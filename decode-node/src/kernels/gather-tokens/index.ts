export { gatherTokens, gatherTokensShader, FROM_HOST } from './gather-tokens.js';
