// Every kind's common ground: re-read the stored bytes and check them against the recorded sha256 and size.
import { Type } from '@sinclair/typebox';
import { createHash } from 'node:crypto';
import { ProcessingError, type Processor } from './types.js';

export const genericProcessor: Processor = {
  resultSchema: Type.Object(
    {
      sha256_verified: Type.Boolean({ description: 'The stored bytes hash to the recorded sha256.' }),
      bytes_read: Type.Integer({ description: 'Bytes read back from storage.' }),
    },
    { additionalProperties: true },
  ),

  async process({ file, storage }) {
    let stream;
    try {
      stream = await storage.open(file.id);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new ProcessingError('blob_missing', 'The stored bytes of this file are missing.');
      }
      throw err;
    }
    const hash = createHash('sha256');
    let bytesRead = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytesRead += chunk.length;
    }
    if (bytesRead !== file.size || hash.digest('hex') !== file.sha256) {
      throw new ProcessingError(
        'checksum_mismatch',
        `The stored bytes (${bytesRead}) do not match what was uploaded (${file.size} bytes, sha256 ${file.sha256.slice(0, 12)}…).`,
      );
    }
    return { sha256_verified: true, bytes_read: bytesRead };
  },
};
