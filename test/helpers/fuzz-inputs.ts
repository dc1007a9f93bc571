// Generated bad input for the fuzz tests: names, option values, JSON shapes and raw bodies, as fast-check arbitraries.
import fc from 'fast-check';

/** Names and refs with every class of character the protocol can carry. */
const oddNames = [
  '', ' ', '.', '..', '...', '/', '//', '../x', '../../x', '../../../../../tmp/ferry-fuzz-escape', 'a/b', 'a/../b', 'a/..', './a', '.a', '-a', '_a',
  'a\0b', '\0', 'ab\0', 'a\nb', 'a\rb', 'a\tb', '\x7f', '\x1b[31mred', 'a b', 'a ', ' a', 'a\u00a0b', 'ä', 'ab\u200b', 'ab\u202e',
  '\ud800', 'a\udfff', '😀😀', 'ｆｕｌｌ', 'a%2fb', 'a%00b', '%2e%2e', 'a@1', 'a@1234567890123', 'a@99999999999999999999', 'a@-1',
  'a.json', 'a.tmp', 'con', 'nul', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf',
  'x'.repeat(128), 'x'.repeat(129), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(4096), 'x'.repeat(10_000),
];

/** A name that is valid: some cases must get past validation so that the catalog fills. */
export const validName = fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{1,12}$/);

export const oddName: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...oddNames), weight: 4 },
  { arbitrary: validName, weight: 3 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'binary-ascii', minLength: 120, maxLength: 10_000 }), weight: 1 },
  // a valid name with one odd character inserted
  { arbitrary: fc.tuple(validName, fc.constantFrom('/', '\0', '\n', '..', ' ', 'é', '@', '%', '\\', ':', '*', '?'), fc.nat(12)).map(([n, c, i]) => n.slice(0, i) + c + n.slice(i)), weight: 2 },
);

/** Odd values for options and fields: numbers at every edge, wrong types, nested shapes. */
export const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, 0, -0, 1, 99999, 0o777, 4294967294, 4294967295, 2 ** 53, -(2 ** 53), 1e308, -1e308, 5e-324, 1.5, 0.1, Number.MAX_SAFE_INTEGER),
  fc.constantFrom('-1', '99999', '1e308', '1e3', '0x10', '0o7', '0b1', ' 1', '1 ', '+1', '1.0', '٣', '１', '0755', '07777', '17777', '9'.repeat(400), 'NaN', 'Infinity', ''),
  fc.constantFrom('true', 'false', 'null', 'rwx', 'rox', 'rwo', '@hourly', '@never', '* * * * *', '0 0 30 2 *', '99 99 99 99 99', 'last=3', 'last=1e308', 'last=0', 'within=1e308d', 'within=-1h', 'a@b', 'file:///nonexistent?backup=abcd&volume=v', 'file:///%00?backup=abcd', 'file:///%2F?backup=abcd&volume=v', 'http://127.0.0.1:9/', 'ftp://x'),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  oddName,
  fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer()), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

const optionKeys = [
  'pool', 'access', 'from', 'uid', 'gid', 'mode', 'snapshot-schedule', 'snapshot-keep', 'backup', 'backup-schedule', 'backup-target', 'backup-keep',
  'size', 'type', 'o', 'device', 'Pool', 'UID', ' uid', 'uid ', '', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'x'.repeat(10_000),
];

/** Volume options: known and unknown keys with values of every type. */
export const oddOptions: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.dictionary(fc.oneof(fc.constantFrom(...optionKeys), fc.string({ maxLength: 12 })), oddValue, { maxKeys: 4 }), weight: 5 },
  { arbitrary: oddValue, weight: 1 },
);

/** A JSON value of any shape (what a broken client might send). */
export const anyJson = fc.jsonValue({ maxDepth: 4 });

export type RawBody = { kind: string; body: Buffer | string | undefined; contentType?: string };

const contentTypes = [undefined, 'application/json', 'application/vnd.docker.plugins.v1.2+json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'a/b;;;=', 'application/json; charset=utf-16', 'application/json; charset=latin1', ''];

/** Rebuild JSON text from key/value pairs so that a key can appear twice (JSON.stringify cannot write that). */
function objectText(pairs: Array<[string, unknown]>): string {
  return `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`;
}

/**
 * Whole request bodies. `fields` makes the object shapes this endpoint reads (so that the shapes reach the
 * handlers, not only the parser); the rest are wrong at the JSON level: other types, non-JSON, bytes that are
 * not UTF-8, duplicate keys, deep nesting, bodies at and above the size limit.
 */
export function rawBodies(fields: fc.Arbitrary<Record<string, unknown>>, limit: number): fc.Arbitrary<RawBody> {
  const ct = fc.constantFrom(...contentTypes);
  return fc.oneof(
    { arbitrary: fc.tuple(fields, ct).map(([o, c]) => ({ kind: 'json-object', body: JSON.stringify(o), contentType: c ?? 'application/json' })), weight: 10 },
    { arbitrary: fc.tuple(anyJson, ct).map(([v, c]) => ({ kind: 'json-any', body: JSON.stringify(v), contentType: c })), weight: 3 },
    {
      arbitrary: fc.tuple(fields, fields, fc.boolean()).map(([a, b, rev]) => {
        const pairs: Array<[string, unknown]> = [...Object.entries(a), ...Object.entries(b)];
        return { kind: 'duplicate-keys', body: objectText(rev ? pairs.reverse() : pairs), contentType: 'application/json' };
      }),
      weight: 2,
    },
    { arbitrary: fc.tuple(fc.string({ unit: 'binary', maxLength: 200 }), ct).map(([s, c]) => ({ kind: 'not-json', body: s, contentType: c })), weight: 2 },
    { arbitrary: fc.uint8Array({ maxLength: 200 }).map((u) => ({ kind: 'bytes', body: Buffer.from(u), contentType: 'application/json' })), weight: 1 },
    {
      arbitrary: fc.constantFrom('{', '}', '{"Name":', '[]', 'null', '0', '"x"', 'true', '{"Name":"a1"}garbage', '{"Name":"a1",}', "{'Name':'a1'}", '\ufeff{"Name":"a1"}', '{"Name":"a1"}\0', '{"Name":"\\ud800"}', '{"Name":"a\\u0000b"}', '{"__proto__":{"Name":"p1"}}', '{"constructor":{"prototype":{"x":1}}}').map((s) => ({ kind: 'not-json', body: s, contentType: 'application/json' })),
      weight: 2,
    },
    { arbitrary: fc.integer({ min: 1000, max: 200_000 }).map((d) => ({ kind: 'deep-nesting', body: '['.repeat(d) + ']'.repeat(d), contentType: 'application/json' })), weight: 1 },
    { arbitrary: fc.constantFrom(limit - 64, limit + 1, limit * 4).map((n) => ({ kind: 'huge', body: JSON.stringify({ Name: 'huge1', name: 'huge1', pad: 'x'.repeat(Math.max(0, n - 40)) }), contentType: 'application/json' })), weight: 1 },
    { arbitrary: fc.constant({ kind: 'empty', body: undefined }), weight: 1 },
  );
}
