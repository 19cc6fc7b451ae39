// Public API of the gateway.
export * from './http/index.js';
