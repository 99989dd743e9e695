// The one file part of a multipart/form-data upload, parsed by busboy and streamed into the blob store.
// A failed upload has removed what it stored, and read the rest of its body (up to the cap), before its error
// is reported: the client can read the answer, and finds nothing left behind.
import busboy from 'busboy';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { newId } from '../core/ids.js';
import {
  BlobTooLargeError,
  isStorageFull,
  StorageUnavailableError,
  type BlobStore,
  type StoredBlob,
} from '../core/storage/index.js';
import { BodyReader, BodyTooLargeError, BodyTooSlowError, type MinRate } from './body.js';
import { AppError, storageUnavailable } from './errors.js';

const FILE_FIELD = 'file';
/** `file`, or a path into it (`file[]`, `file[name]`), as form parsers read nested field names. */
const FILE_FIELD_PATH = /^file(\[[^\]]+\])*(\[\])?$/;

/**
 * What a form may hold besides its one file. At their largest (70-character boundaries, part headers of busboy's
 * 16 KiB), 12 × (76 + 16384) + 10 × 65536 + 78 bytes: they fit in MULTIPART_ALLOWANCE_BYTES.
 */
export const MULTIPART_LIMITS = { files: 1, fields: 10, fieldSize: 64 * 1024, fieldNameSize: 200, parts: 12 } as const;
/** RFC 2046's longest boundary. */
const MAX_BOUNDARY_LENGTH = 70;

/** Bytes an upload's body may hold besides the file: boundaries, part headers and text fields. */
export const MULTIPART_ALLOWANCE_BYTES = 1024 * 1024;

/** The largest body an upload may have. */
export const maxUploadBodyBytes = (maxFileBytes: number): number => maxFileBytes + MULTIPART_ALLOWANCE_BYTES;

export interface ReceivedFile extends StoredBlob {
  id: string;
  /** The filename as the client sent it; safeFilename reduces it. */
  filename: string;
}

/** The answer to a body over maxUploadBodyBytes. */
export const bodyTooLarge = (maxFileBytes: number): AppError =>
  new AppError(
    'file_too_large',
    `The request body is larger than the limit of ${maxUploadBodyBytes(maxFileBytes)} bytes: ${maxFileBytes} for the file and ${MULTIPART_ALLOWANCE_BYTES} for the rest of the form.`,
  );

export interface UploadLimits {
  maxFileBytes: number;
  minRate: MinRate;
}

/**
 * Receives the file part named `file` into `storage`; throws an AppError for anything else. Past
 * maxUploadBodyBytes, or below the minimum rate, the body is read no further: the answer then closes the connection.
 */
export async function receiveFile(
  req: IncomingMessage,
  storage: BlobStore,
  limits: UploadLimits,
): Promise<ReceivedFile> {
  const { maxFileBytes } = limits;
  const parser = openParser(req, maxFileBytes);
  const body = new BodyReader(req, parser, { maxBytes: maxUploadBodyBytes(maxFileBytes), minRate: limits.minRate });
  let failure: Error | undefined;
  let stored: Promise<ReceivedFile> | undefined;
  let fileSentAsField = false;

  const fail = (err: unknown) => {
    if (failure) return;
    failure = asUploadError(err, maxFileBytes);
    body.discard();
    // Ends the file stream being written, if any, so that its write settles (and removes its temporary file);
    // on the next tick, as busboy still uses its state after emitting the event that may have brought us here.
    process.nextTick(() => parser.destroy());
  };
  const invalid = (detail: string) => fail(new AppError('invalid_multipart', detail));

  parser.on('file', (rawName: string | undefined, stream: Readable, info: busboy.FileInfo) => {
    stream.on('error', fail);
    if (failure) return stream.resume();
    if (rawName == null) return skip(stream, () => invalid('A part has no field name.'));
    // busboy counts a part without a filename as a file when its type is application/octet-stream: not ours.
    if (!info.filename) return stream.resume();
    if (rawName.length > MULTIPART_LIMITS.fieldNameSize)
      return skip(stream, () => invalid('A field name is too long.'));
    const field = decodeFormDataName(rawName);
    if (field !== FILE_FIELD) {
      return skip(stream, () =>
        fail(new AppError('file_missing', `Send the file in a part named "file", not "${field.slice(0, 100)}".`)),
      );
    }
    stream.once('limit', () => fail(new BlobTooLargeError(maxFileBytes)));
    const id = newId();
    const filename = decodeFormDataName(info.filename);
    stored = storage.put(id, stream, { maxBytes: maxFileBytes }).then(async (blob) => {
      if (blob.size === 0) {
        await storage.remove(id);
        throw new AppError('file_empty', 'The submitted file is empty.');
      }
      return { ...blob, id, filename };
    });
    stored.catch(fail);
  });
  parser.on('field', (rawName: string | undefined, _value: string, info: busboy.FieldInfo) => {
    if (rawName == null) return invalid('A part has no field name.');
    if (info.valueTruncated) return invalid('A text field is too long.');
    if (rawName.length > MULTIPART_LIMITS.fieldNameSize) return invalid('A field name is too long.');
    if (FILE_FIELD_PATH.test(decodeFormDataName(rawName))) fileSentAsField = true;
  });
  parser.on('partsLimit', () => invalid('The form has too many parts.'));
  parser.on('fieldsLimit', () => invalid('The form has too many text fields.'));
  parser.on('filesLimit', () =>
    fail(new AppError('too_many_files', 'Send exactly one file per upload, in a part named "file".')),
  );
  parser.on('error', fail);

  const parsed = new Promise((resolve) => parser.once('close', resolve));
  body.done.catch(fail);
  await parsed;
  const received = await stored?.catch(() => undefined);
  if (!failure && received) return received;
  if (received) await storage.remove(received.id);
  // The rest of a failed body is read (and dropped) so that the client, done sending, reads the answer.
  await body.done.catch(() => undefined);
  if (failure) throw failure;
  throw new AppError(
    'file_missing',
    fileSentAsField
      ? 'The part named "file" is a text field; send it as a file (with a filename).'
      : 'The request has no part named "file"; send the file in a multipart part named "file".',
  );
}

function openParser(req: IncomingMessage, maxFileBytes: number): busboy.Busboy {
  const boundary = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]*))/i.exec(req.headers['content-type'] ?? '');
  if ((boundary?.[1] ?? boundary?.[2] ?? '').length > MAX_BOUNDARY_LENGTH) {
    throw new AppError('invalid_multipart', `The multipart boundary is longer than ${MAX_BOUNDARY_LENGTH} characters.`);
  }
  try {
    return busboy({
      headers: req.headers,
      // busboy reports reaching a limit; one more than each lets through what is exactly at it.
      limits: {
        ...MULTIPART_LIMITS,
        fieldSize: MULTIPART_LIMITS.fieldSize + 1,
        parts: MULTIPART_LIMITS.parts + 1,
        fileSize: maxFileBytes + 1,
      },
      // Browsers send UTF-8 filenames; busboy would read them as Latin-1 by default.
      defParamCharset: 'utf8',
      // Keep the name as sent ("..", "a/b"): safeFilename reduces it, so busboy must not drop it first.
      preservePath: true,
    });
  } catch (err) {
    throw asUploadError(err, maxFileBytes);
  }
}

/** Reads past a part that is not kept, then reports why. */
function skip(stream: Readable, report: () => void): void {
  stream.resume();
  report();
}

/** Browsers escape LF, CR and `"` in field names and filenames (WHATWG HTML); busboy leaves them escaped. */
function decodeFormDataName(name: string): string {
  return name.replace(/%0A|%0D|%22/gi, (escape) => FORM_DATA_ESCAPES[escape.toUpperCase()] ?? escape);
}
const FORM_DATA_ESCAPES: Record<string, string> = { '%0A': '\n', '%0D': '\r', '%22': '"' };

function asUploadError(err: unknown, maxFileBytes: number): Error {
  if (err instanceof AppError) return err;
  if (err instanceof BlobTooLargeError)
    return new AppError('file_too_large', `The file is larger than the limit of ${maxFileBytes} bytes.`);
  if (err instanceof BodyTooLargeError) return bodyTooLarge(maxFileBytes);
  if (err instanceof BodyTooSlowError) {
    const { bytesPerSecond, windowMs } = err.rate;
    return new AppError(
      'request_timeout',
      `The body arrived slower than ${bytesPerSecond} bytes a second over ${windowMs / 1000} s; send it again faster.`,
    );
  }
  if (isStorageFull(err))
    return new AppError('insufficient_storage', 'The file store is full; retry later.', { cause: err });
  if (err instanceof StorageUnavailableError) return storageUnavailable(err);
  // busboy's parse errors (no boundary, malformed headers, unexpected end) and requests cut short.
  if (err instanceof Error && !(err as NodeJS.ErrnoException).syscall) {
    return new AppError('invalid_multipart', 'The multipart body is malformed or was cut short; send it again whole.', {
      cause: err,
    });
  }
  return err as Error;
}
