// The one model this gateway serves: the opened folder (only the parts the HTTP layer reads) and the id
// clients name it by.
import { basename } from 'node:path';
import type { ModelFolder } from '@latentwire/model';

export type GatewayModel = Pick<ModelFolder, 'dir' | 'config' | 'tokenizer' | 'chatTemplate' | 'generation' | 'fingerprint'>;

export interface ServedModel {
  /** What `model` must equal in requests and what /v1/models lists. */
  readonly id: string;
  readonly folder: GatewayModel;
  /** Unix seconds; /v1/models reports it as `created`. */
  readonly created: number;
  /** OpenAI's system_fingerprint: changes when the served checkpoint does. */
  readonly systemFingerprint: string;
}

export function servedModel(folder: GatewayModel, servedModelName?: string): ServedModel {
  return {
    id: servedModelName ?? basename(folder.dir),
    folder,
    created: Math.floor(Date.now() / 1000),
    systemFingerprint: `fp_${folder.fingerprint.slice(0, 10)}`,
  };
}
