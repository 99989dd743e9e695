// Bounded work per file: crafted inputs that made a parser loop without moving on, or hold memory in
// proportion to what the file declares, end quickly with a clear outcome. The analyses are called directly.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { analyzeArchive } from '../worker/processors/archive.js';
import type { Analyzed, AnalysisInput, ProcessingLimits } from '../worker/processors/types.js';
import { tar } from './support/fixtures.js';
import { rejection } from './support/eventually.js';

const LIMITS: ProcessingLimits = { maxImagePixels: 50_000_000 };

const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-bounded-'));
after(() => rm(dir, { recursive: true, force: true }));

/** Runs `analysis` on `content` written to a file, failing if it is still running after `ms` (a stuck loop never ends). */
async function analyze<F>(analysis: (input: AnalysisInput) => Promise<Analyzed<F>>, name: string, content: Buffer, contentType: string, ms = 5_000): Promise<Analyzed<F>> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the analysis of ${name} was still running after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([analysis({ path: file, contentType, size: content.length, limits: LIMITS }), late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('tar headers', () => {
  const analyzeTar = (name: string, content: Buffer) => analyze(analyzeArchive, name, content, 'application/x-tar');

  it('fails a header declaring a negative size as corrupt_file at once, where the walk stood still on it', async () => {
    const err = await rejection(analyzeTar('negative.tar', tar([{ name: 'a.txt', content: 'hello', sizeField: '-0000001000\0' }])));
    expect(err).to.include({ code: 'corrupt_file', message: 'The tar header at byte 0 is damaged: its size field "-0000001000" is not an octal number.' });
  });

  it('fails a size that is not octal, or a base-256 size beyond 2^53, as corrupt_file', async () => {
    const letters = await rejection(analyzeTar('letters.tar', tar([{ name: 'a.txt', content: 'hello', sizeField: '00000000zz1\0' }])));
    expect(letters).to.include({ code: 'corrupt_file', message: 'The tar header at byte 0 is damaged: its size field "00000000zz1" is not an octal number.' });
    const huge = Buffer.concat([Buffer.from([0x80, 0x00, 0x00, 0x00]), Buffer.alloc(8, 0xff)]);
    const overflow = await rejection(analyzeTar('overflow.tar', tar([{ name: 'a.txt', content: 'hello', sizeField: huge }])));
    expect(overflow).to.include({ code: 'corrupt_file' });
    expect(overflow.message).to.match(/size field is a base-256 number beyond 2\^53/);
    const negative = await rejection(analyzeTar('negative-256.tar', tar([{ name: 'a.txt', content: 'hello', sizeField: Buffer.alloc(12, 0xff) }])));
    expect(negative).to.include({ code: 'corrupt_file' });
  });

  it('fails a checksum field that is not octal as corrupt_file, naming the field', async () => {
    const content = tar([{ name: 'a.txt', content: 'hello' }]);
    content.write('-00001\0 ', 148, 'latin1');
    const err = await rejection(analyzeTar('checksum.tar', content));
    expect(err).to.include({ code: 'corrupt_file', message: 'The tar header at byte 0 is damaged: its checksum field "-00001" is not an octal number.' });
  });

  it('still reads sizes padded with spaces, without a terminator, or in base 256', async () => {
    const base256 = Buffer.concat([Buffer.from([0x80]), Buffer.alloc(10), Buffer.from([5])]);
    for (const sizeField of ['00000000005 ', '          5', '5\0          ', base256]) {
      const { fields } = await analyzeTar('sizes.tar', tar([{ name: 'a.txt', content: 'hello', sizeField }]));
      expect(fields, JSON.stringify(sizeField)).to.deep.include({ entries: 1, uncompressed_bytes: 5, names: ['a.txt'] });
    }
  });
});
