// pino redaction for every gateway logger: an Authorization header (an API key) never reaches the logs,
// wherever a request's headers are logged.
import type { LoggerOptions } from 'pino';

export const LOG_REDACT: NonNullable<LoggerOptions['redact']> = {
  paths: ['authorization', 'headers.authorization', 'req.headers.authorization', '*.headers.authorization', 'request.headers.authorization'],
  censor: '[Redacted]',
};
