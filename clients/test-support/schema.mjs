// SPDX-License-Identifier: Apache-2.0
// The message JSON Schema as docs/events.md publishes it, and a small
// validator for the parts of JSON Schema it uses (type, required,
// properties, pattern, minimum/maximum, oneOf, $ref to $defs), so that
// the tests hold the server to its documentation.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOP } from './server.mjs';

export function messageSchema() {
  const doc = readFileSync(join(TOP, 'docs/events.md'), 'utf8');
  const m = /## The message[\s\S]*?```json\n([\s\S]*?)\n```/.exec(doc);
  if (!m) throw new Error('docs/events.md has no JSON Schema under "## The message"');
  return JSON.parse(m[1]);
}

const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array'
  : Number.isInteger(v) ? 'integer' : typeof v);

// Returns the list of problems (empty when v is valid).
export function validate(schema, v, root = schema, path = '$') {
  const out = [];
  if (schema.$ref) {
    const name = schema.$ref.replace('#/$defs/', '');
    return validate(root.$defs[name], v, root, path);
  }
  if (schema.type) {
    const types = [].concat(schema.type);
    const t = typeOf(v);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) {
      out.push(`${path}: ${JSON.stringify(v)} is not ${types.join('|')}`);
      return out;
    }
  }
  if (schema.oneOf) {
    const ok = schema.oneOf.filter((s) => validate(s, v, root, path).length === 0);
    if (ok.length !== 1) out.push(`${path}: ${JSON.stringify(v)} matches ${ok.length} of oneOf`);
  }
  if (typeof v === 'string' && schema.pattern && !new RegExp(schema.pattern).test(v)) {
    out.push(`${path}: ${JSON.stringify(v)} does not match ${schema.pattern}`);
  }
  if (typeof v === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) out.push(`${path}: ${v} < ${schema.minimum}`);
    if (schema.maximum !== undefined && v > schema.maximum) out.push(`${path}: ${v} > ${schema.maximum}`);
  }
  if (typeOf(v) === 'object') {
    for (const k of schema.required || []) if (!(k in v)) out.push(`${path}: no ${k}`);
    for (const [k, s] of Object.entries(schema.properties || {})) {
      if (k in v) out.push(...validate(s, v[k], root, `${path}.${k}`));
    }
  }
  return out;
}
