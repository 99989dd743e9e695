// What every result carries, whatever the kind: the bytes were read back and matched their record.
import { Kind, Type, TypeRegistry, type Static, type TObject, type TProperties } from '@sinclair/typebox';

/** Said of a field added to a result: results recorded before it existed do not have it. */
export const BEFORE_IT_EXISTED = 'Absent from results recorded before it existed.';

const CommonResultFields = {
  sha256_verified: Type.Boolean({
    description: 'The stored bytes hash to the recorded sha256 (always true in a result: a mismatch fails the file).',
  }),
  bytes_read: Type.Integer({ minimum: 0, description: 'Bytes read back from storage.' }),
  warnings: Type.Array(Type.String(), {
    description:
      'Things a client should know although the file was processed: a bomb-like compression ratio, text that is not valid UTF-8, ...',
  }),
  truncated: Type.Optional(
    Type.Boolean({
      description:
        'True when something the file holds was cut to keep the result bounded: a string longer than 1 KiB, a list ' +
        'longer than 100 items, or the whole result past `MAX_RESULT_BYTES` (64 KiB by default). Absent from results ' +
        'recorded before it existed.',
    }),
  ),
};

export const CommonResultSchema = Type.Object(CommonResultFields);
export type CommonResult = Static<typeof CommonResultSchema>;

/** A kind's result: the common fields plus its own, as one flat object (what OpenAPI tools show best). */
export const kindResult = <T extends TProperties>(title: string, description: string, fields: T) =>
  Type.Object({ ...CommonResultFields, ...fields }, { title, description, additionalProperties: false }) as TObject<
    typeof CommonResultFields & T
  > & { title: string };

/** A nullable field: `null` where the file does not say. */
export const OrNull = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

/**
 * A string enum rendered as `{"type": "string", "enum": [...]}`, which OpenAPI tools show best, and checked as one by
 * TypeBox's validator (a kind of its own: TypeBox knows no `enum` keyword).
 */
export const StringEnum = <T extends readonly string[]>(values: T, options: { description?: string } = {}) =>
  Type.Unsafe<T[number]>({ [Kind]: 'StringEnum', type: 'string', enum: [...values], ...options });

TypeRegistry.Set<{ enum: unknown[] }>('StringEnum', (schema, value) => schema.enum.includes(value));
