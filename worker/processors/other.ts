// Kind `other`: nothing more to learn than that the bytes are intact; the file is still `processed`.
import { OtherResultSchema } from '../../core/results/index.js';
import { verifyStoredBytes } from './common.js';
import type { Processor } from './types.js';

export const otherProcessor: Processor = {
  resultSchema: OtherResultSchema,
  async process(input) {
    return { result: await verifyStoredBytes(input), thumbnail: false };
  },
};
