// One validator for every JSON body: the TypeBox schema that documents the body in the OpenAPI document checks it,
// so what the contract says and what the service takes cannot disagree. Every problem becomes an entry of the
// problem's `errors`, one per field, in words a person can act on.
import { FormatRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { parseId } from '../core/ids.js';
import { AppError, type FieldError } from './errors.js';
import { decodePosition, parseTimestamp } from './listing.js';

// The formats the schemas use; TypeBox checks none by itself.
FormatRegistry.Set('uri', (value) => URL.canParse(value));
FormatRegistry.Set('uuid', (value) => parseId(value) !== null);
FormatRegistry.Set('date-time', (value) => parseTimestamp(value) !== null);
// The list's keyset cursor: opaque to clients, but only this API's own cursors are cursors.
FormatRegistry.Set('cursor', (value) => decodePosition(value) !== null);

/** `body` as `schema` types it, or a 400 `invalid_body` naming each field that is not what the schema says. */
export function validated<T extends TSchema>(schema: T, body: unknown, what: string): Static<T> {
  if (Value.Check(schema, body)) return body;
  const errors: FieldError[] = [];
  for (const error of Value.Errors(schema, body)) {
    const field = fieldOf(error.path);
    // The first problem of a field says enough; a union reports its members' too.
    if (!errors.some((known) => known.field === field)) errors.push({ field, message: messageOf(error, schema) });
  }
  throw new AppError('invalid_body', `The ${what} is not valid; see \`errors\`.`, { errors });
}

/** `/events/0` as `events[0]`; the body itself as `(body)`. */
function fieldOf(path: string): string {
  if (path === '') return '(body)';
  return path
    .slice(1)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((field, part) => (/^\d+$/.test(part) ? `${field}[${part}]` : field ? `${field}.${part}` : part), '');
}

function messageOf(error: ValueError, root: TSchema): string {
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    const known = Object.keys((root as { properties?: object }).properties ?? {});
    return `Not a field this takes (${known.join(', ')}).`;
  }
  if (error.type === ValueErrorType.ObjectRequiredProperty) return 'Required.';
  const { enum: values } = error.schema as { enum?: unknown[] };
  if (values) return `Must be one of ${values.join(', ')}.`;
  // A schema may say in words what it wants where TypeBox's own message would not (a union, a pattern).
  const said = (error.schema as { errorMessage?: unknown }).errorMessage;
  return typeof said === 'string' ? said : `${error.message}.`;
}
