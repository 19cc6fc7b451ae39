// Errors the HTTP layer answers with, in OpenAI's body shape so the official clients raise the matching
// exception class (BadRequestError, NotFoundError, RateLimitError, ...). This is the only place that maps
// errors to HTTP statuses.
import { BackendRejection } from './backend.js';

export interface ErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null };
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    /** The request field at fault, e.g. 'temperature' or 'messages[0].content'. */
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Whole seconds for a Retry-After header. */
    readonly retryAfterSeconds?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** OpenAI uses 'invalid_request_error' for every client error (404 model_not_found and 429 included). */
  body(): ErrorBody {
    const type = this.status >= 500 ? 'server_error' : 'invalid_request_error';
    return { error: { message: this.message, type, param: this.param, code: this.code } };
  }
}

export const invalidParam = (param: string, message: string): ApiError => new ApiError(400, message, param, null);

export const modelNotFound = (model: string): ApiError =>
  new ApiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, null, 'model_not_found');

/** Maps anything thrown while serving a request; unknown errors become a 500 that hides their details. */
export function toApiError(err: unknown, requestId: string): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof BackendRejection) return new ApiError(err.status, err.message, null, err.code, err.retryAfterSeconds, { cause: err });
  return new ApiError(500, `The server had an error while processing your request (request id ${requestId}).`, null, null, undefined, {
    cause: err,
  });
}
