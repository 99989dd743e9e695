// Kind `other`: nothing more to learn than that the bytes are intact; the file is still `processed`.
import { verifyStoredBytes } from './common.js';
import type { Processor } from './types.js';

export const otherProcessor: Processor = {
  async process(input) {
    return { result: await verifyStoredBytes(input), thumbnail: false };
  },
};
