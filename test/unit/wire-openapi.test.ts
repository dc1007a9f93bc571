// Checks docs/openapi.yaml's component schemas against the wire contract (src/wire/types.ts): same fields, same required ones.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { parse as parseYaml } from 'yaml';
import { OPENAPI_FILE } from '../../src/api/openapi.js';
import { ROOT } from '../helpers/ferryd.js';

interface Fields { all: string[]; required: string[] }
type Schema = { properties?: Record<string, unknown>; required?: string[]; allOf?: Array<Schema & { $ref?: string }>; $ref?: string };

/** Every exported interface of the wire module: its fields (with those of the interfaces it extends) and which are required. */
function wireInterfaces(): Map<string, Fields> {
  const file = join(ROOT, 'src', 'wire', 'types.ts');
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const decls = new Map<string, ts.InterfaceDeclaration>();
  src.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n)) decls.set(n.name.text, n);
  });
  const fieldsOf = (d: ts.InterfaceDeclaration): Fields => {
    const own = d.members.filter(ts.isPropertySignature);
    const out: Fields = { all: own.map((m) => m.name.getText(src).replace(/'/g, '')), required: own.filter((m) => !m.questionToken).map((m) => m.name.getText(src)) };
    for (const h of d.heritageClauses ?? []) for (const t of h.types) {
      const base = decls.get(t.expression.getText(src));
      assert.ok(base, `${d.name.text} extends ${t.expression.getText(src)}, not in the wire module`);
      const b = fieldsOf(base);
      out.all.push(...b.all);
      out.required.push(...b.required);
    }
    return out;
  };
  return new Map([...decls].map(([k, d]) => [k, fieldsOf(d)]));
}

/** The interface each schema is checked against, where the names differ. */
const ALIAS: Record<string, string> = { Error: 'ApiErrorBody' };

describe('docs/openapi.yaml and the wire contract (src/wire/types.ts)', () => {
  const doc = parseYaml(readFileSync(OPENAPI_FILE, 'utf8')) as { components: { schemas: Record<string, Schema> } };
  const schemas = doc.components.schemas;
  const resolve = (s: Schema): Fields => {
    if (s.$ref) return resolve(schemas[s.$ref.split('/').pop()!]!);
    const out: Fields = { all: Object.keys(s.properties ?? {}), required: [...(s.required ?? [])] };
    for (const part of s.allOf ?? []) {
      const p = resolve(part);
      out.all.push(...p.all);
      out.required.push(...p.required);
    }
    return out;
  };
  const wire = wireInterfaces();

  it('has a wire type for every component schema', () => {
    const missing = Object.keys(schemas).filter((n) => !wire.has(ALIAS[n] ?? n));
    assert.deepEqual(missing, [], 'schemas with no interface of that name in src/wire/types.ts');
  });

  for (const name of Object.keys(schemas)) {
    it(`${name}: the same fields, the same ones required`, () => {
      const w = wire.get(ALIAS[name] ?? name);
      if (!w) return; // reported above
      const d = resolve(schemas[name]!);
      const sort = (a: string[]) => [...new Set(a)].sort();
      assert.deepEqual(sort(d.all), sort(w.all), `${name}: fields of the schema (actual) vs of the type (expected)`);
      assert.deepEqual(sort(d.required), sort(w.required), `${name}: required fields of the schema (actual) vs non-optional fields of the type (expected)`);
    });
  }
});
