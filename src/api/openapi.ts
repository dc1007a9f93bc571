/** The OpenAPI description of the control API, served at /v1/openapi.yaml and .json. */
import { readFile } from 'node:fs/promises';
import { builtPath } from '../util/built-files.js';
import { FerryError, errorMessage } from '../util/errors.js';

/** docs/openapi.yaml, the API's description, beside the program. */
export const OPENAPI_FILE = builtPath('../../docs/openapi.yaml');

let cached: Promise<{ yaml: string; json: unknown }> | undefined;

function load(): Promise<{ yaml: string; json: unknown }> {
  // (the YAML parser loads with the first request for the document, not with ferryd)
  cached ??= Promise.all([readFile(OPENAPI_FILE, 'utf8'), import('yaml')]).then(
    ([yaml, { parse }]) => ({ yaml, json: parse(yaml) as unknown }),
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
