import { Type, type Static } from '@sinclair/typebox';
import { kindResult, OrNull } from './common.js';

/** Names listed in a result; the count says how many there are in all. */
export const LISTED_NAMES = 100;

export const ArchiveResultSchema = kindResult(
  'ArchiveResult',
  'The result of a file of kind `archive`. Read from the directory or headers only: nothing is ever extracted. ' +
    'Fields a format does not record cheaply are null.',
  {
    format: Type.String({
      description: '`zip`, `tar`, `gzip`, `bzip2`, `xz`, `zstd`, `7z`, `rar`, ...',
      examples: ['zip'],
    }),
    entries: OrNull(Type.Integer({ minimum: 0, description: 'Files and directories in the archive.' })),
    compressed_bytes: OrNull(
      Type.Integer({ minimum: 0, description: 'Sum of the compressed sizes the archive declares.' }),
    ),
    uncompressed_bytes: OrNull(
      Type.Integer({ minimum: 0, description: 'Sum of the uncompressed sizes the archive declares.' }),
    ),
    ratio: OrNull(
      Type.Number({
        minimum: 0,
        description: 'uncompressed_bytes / compressed_bytes; a warning flags bomb-like ratios.',
      }),
    ),
    names: Type.Array(Type.String(), {
      maxItems: LISTED_NAMES,
      description: `The first ${LISTED_NAMES} entry names, in archive order.`,
    }),
    encrypted_entries: OrNull(Type.Integer({ minimum: 0, description: 'Entries that need a password.' })),
  },
);
export type ArchiveResult = Static<typeof ArchiveResultSchema>;
