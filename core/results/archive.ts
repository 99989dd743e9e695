import { Type, type Static } from '@sinclair/typebox';
import { kindResult, OrNull } from './common.js';

// Archives and compressed streams as file-type names them, each with the format name results report (zip-based
// packages such as jar and apk are read as zips). Zip-based documents are not archives: office documents are of
// kind `document` (see document.ts), and the others (epub, templates) stay `other`.
export const ARCHIVE_FORMATS: Readonly<Record<string, string>> = {
  'application/zip': 'zip',
  'application/java-archive': 'zip',
  'application/vnd.android.package-archive': 'zip',
  'application/x-xpinstall': 'zip',
  'application/x-tar': 'tar',
  'application/gzip': 'gzip',
  'application/x-bzip2': 'bzip2',
  'application/x-xz': 'xz',
  'application/zstd': 'zstd',
  'application/x-lzip': 'lzip',
  'application/x-lz4': 'lz4',
  'application/x-compress': 'compress',
  'application/x-7z-compressed': '7z',
  'application/x-rar-compressed': 'rar',
  'application/vnd.rar': 'rar',
  'application/vnd.ms-cab-compressed': 'vnd.ms-cab-compressed',
  'application/x-cpio': 'cpio',
  'application/x-unix-archive': 'unix-archive',
  'application/x-deb': 'deb',
  'application/x-rpm': 'rpm',
  'application/x-arj': 'arj',
  'application/x-lzh-compressed': 'lzh-compressed',
  'application/x-ace-compressed': 'ace-compressed',
};

/** Names listed in a result; the count says how many there are in all. */
export const LISTED_NAMES = 100;

export const ArchiveResultSchema = kindResult(
  'ArchiveResult',
  'The result of a file of kind `archive`. Read from the directory or headers only: nothing is ever extracted. ' +
    'Fields a format does not record cheaply are null.',
  {
    format: Type.String({
      description:
        '`zip`, `tar`, `tar.gz` and `tar.zst` (a tar in a gzip or zstd stream, listed as it decompresses), `gzip`, ' +
        '`bzip2`, `xz` (neither decompressed: a tar inside is not listed), `zstd`, `7z`, `rar`, ...',
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
