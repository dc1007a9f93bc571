/** The OpenAPI description of the control API, served at /v1/openapi.yaml and .json. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { FerryError, errorMessage } from '../util/errors.js';

/** docs/openapi.yaml, the API's description, beside the program (this file is dist/src/api/openapi.js once built). */
export const OPENAPI_FILE = fileURLToPath(new URL('../../../docs/openapi.yaml', import.meta.url));

let cached: Promise<{ yaml: string; json: unknown }> | undefined;

function load(): Promise<{ yaml: string; json: unknown }> {
  cached ??= readFile(OPENAPI_FILE, 'utf8').then(
    (yaml) => ({ yaml, json: parseYaml(yaml) as unknown }),
    (err: unknown) => {
      cached = undefined;
      throw new FerryError('unavailable', `the OpenAPI document is not installed beside ferryd (${errorMessage(err)})`);
    },
  );
  return cached;
}

export async function openApiYaml(): Promise<string> {
  return (await load()).yaml;
}

export async function openApiJson(): Promise<unknown> {
  return (await load()).json;
}
