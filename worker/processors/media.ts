// What audio and video share: music-metadata reads the container's headers (never decodes a sample)
// for container, duration, codecs, bitrate, sample rate and channels, once a walk of our own has counted what it
// would do work for per item (Ogg pages, MP4 boxes and brands) against caps.
import { parseFromTokenizer, type IAudioMetadata } from 'music-metadata';
import { AbstractTokenizer, EndOfStreamError, type IFileInfo, type IReadChunkOptions } from 'strtok3';
import type { AudioResult } from '../../core/results/media.js';
import type { CommonResult } from '../../core/results/index.js';
import type { BlobSource } from '../../core/storage/index.js';
import { isReadFailure, withBlob, type BlobReader } from './blobSource.js';
import { WindowedFile } from './common.js';
import { mediaStructure, type MediaStructure } from './mediaStructure.js';
import { ProcessingError } from './types.js';

/** music-metadata reads every Ogg page to the last, whose position gives the duration: 100,000 (5.5 hours at 5 a second) take 0.9 s, 3,000,000 18 to 27 s. */
export const OGG_MAX_PAGES = 100_000;
/** music-metadata looks at every logical stream of an Ogg file at each page; a film has two or three. */
export const OGG_MAX_STREAMS = 16;
/** music-metadata joins a packet's pages at a cost that grows as their square (40,000: 24 s); a cover picture spans a few hundred. */
export const OGG_MAX_PACKET_PAGES = 1_000;
/** music-metadata reads MP4 boxes at about 5 µs each, 200,000 in 1.1 to 1.7 s; a film has hundreds, two hours in 1-s fragments 50,000. */
export const MP4_MAX_BOXES = 200_000;
/** music-metadata drops repeated brands at a cost that grows as their square (150,000: 28 to 60 s and a 750 KB container); files list 2 to 6. */
export const MP4_MAX_BRANDS = 100;

/** music-metadata reads an ID3v2 frame whole, in several copies (a 50 MiB title passed the parser's 256 MiB); cover pictures make the largest honest tags. */
export const ID3V2_MAX_BYTES = 16 * 1024 * 1024;

/** Bytes of the ID3v2 tag at the start of the file, header included; 0 when there is none. */
async function id3v2Bytes(reader: BlobReader): Promise<number> {
  const header = Buffer.alloc(10);
  const { bytesRead } = await reader.read(header, 0, 10, 0);
  if (bytesRead < 10 || header.toString('latin1', 0, 3) !== 'ID3') return 0;
  // Four 7-bit bytes (synchsafe), then the footer a v2.4 tag may have.
  const size =
    ((header[6]! & 0x7f) << 21) | ((header[7]! & 0x7f) << 14) | ((header[8]! & 0x7f) << 7) | (header[9]! & 0x7f);
  return 10 + size + (header[3] === 4 && header[5]! & 0x10 ? 10 : 0);
}

export type MediaFields = Omit<AudioResult, keyof CommonResult>;

export interface MediaHeaders {
  fields: MediaFields;
  metadata: IAudioMetadata;
  warnings: string[];
  /** The duration was left unread (a cap's warning says why): no other warning about it is due. */
  durationUnread: boolean;
}

export function readMediaHeaders(source: BlobSource, contentType: string, size: number): Promise<MediaHeaders> {
  return withBlob(source, async (reader) => {
    const structure = await mediaStructure(reader, size, {
      oggPages: OGG_MAX_PAGES,
      oggStreams: OGG_MAX_STREAMS,
      oggPacketPages: OGG_MAX_PACKET_PAGES,
      isoBoxes: MP4_MAX_BOXES,
    });
    const readable = readableBytes(structure, size);
    // An ID3v2 tag past its cap is hidden from music-metadata, which holds each frame whole: the audio after it is read.
    const tagBytes = await id3v2Bytes(reader);
    const skipped = tagBytes > ID3V2_MAX_BYTES ? tagBytes : 0;
    const metadata = await parseFromTokenizer(new WindowedTokenizer(new WindowedFile(reader), readable, skipped), {
      duration: true,
      skipCovers: true,
    }).catch((err: unknown) => {
      if (isReadFailure(err)) throw err;
      // In our words: the library's own (its names, its guesses at a MIME type) mean nothing to the person reading.
      const reason = String((err as Error)?.message ?? err).split('\n')[0] ?? '';
      if (/unsupported|not supported|guess mime/i.test(reason)) {
        throw new ProcessingError(
          'unsupported_format',
          `The media container ${contentType} is not one this service reads.`,
        );
      }
      throw new ProcessingError(
        'corrupt_file',
        "The media file's headers could not be read: it is damaged, truncated, or not what its first bytes say.",
      );
    });
    const fields = fieldsOf(metadata);
    const warnings = await riffWarnings(reader, size);
    if (skipped > 0)
      warnings.push(
        `The ID3v2 tag is ${skipped} bytes, more than the ${ID3V2_MAX_BYTES} this service reads; its tags were not read.`,
      );
    if (readable === size) return { metadata, fields, warnings, durationUnread: false };
    // The last page read is not the last page: what it says of the duration (and the bitrate made from it) is not so.
    return {
      metadata,
      fields: { ...fields, duration_seconds: null, bitrate: null },
      warnings: [
        ...warnings,
        `The Ogg file has more than ${OGG_MAX_PAGES} pages, the most this service reads; its duration and bitrate were not read.`,
      ],
      durationUnread: true,
    };
  });
}

/**
 * How much of the file music-metadata reads: all of it, but for an Ogg file past its page cap the pages within it,
 * as if the file ended there. A container that would cost more than the other caps allow fails with `too_complex`.
 */
function readableBytes(structure: MediaStructure | null, size: number): number {
  if (structure?.container === 'iso') {
    const { brands, boxes } = structure;
    if (brands > MP4_MAX_BRANDS)
      throw tooComplex(
        `The MP4 file lists ${brands} compatible brands, more than the ${MP4_MAX_BRANDS} this service reads; it was not read.`,
      );
    if (boxes > MP4_MAX_BOXES)
      throw tooComplex(
        `The MP4 file has more than ${MP4_MAX_BOXES} boxes, the most this service reads; it was not read.`,
      );
  }
  if (structure?.container !== 'ogg') return size;
  if (structure.streams > OGG_MAX_STREAMS)
    throw tooComplex(
      `The Ogg file has more than ${OGG_MAX_STREAMS} logical streams, the most this service reads; it was not read.`,
    );
  if (structure.packetPages > OGG_MAX_PACKET_PAGES)
    throw tooComplex(
      `The Ogg file has a packet spread over more than ${OGG_MAX_PACKET_PAGES} pages, the most this service reads; it was not read.`,
    );
  return structure.pages > OGG_MAX_PAGES ? structure.bytesWithinLimit : size;
}

const tooComplex = (message: string) => new ProcessingError('too_complex', message);

function fieldsOf({ format, common }: IAudioMetadata): MediaFields {
  const codecs = new Set<string>();
  // Codecs music-metadata does not name come as a bracketed four-character code, `<avc1>`.
  const codecName = (name: string) => name.replace(/^<(.+)>$/, '$1');
  for (const track of format.trackInfo) if (track.codecName) codecs.add(codecName(track.codecName));
  if (codecs.size === 0 && format.codec) codecs.add(codecName(format.codec));
  return {
    container: format.container ?? null,
    duration_seconds: toMilliseconds(finiteOrNull(format.duration)),
    codecs: [...codecs],
    bitrate: finiteOrNull(format.bitrate),
    sample_rate: finiteOrNull(format.sampleRate),
    channels: finiteOrNull(format.numberOfChannels),
    title: tag(common.title),
    artist: tag(common.artist),
    album: tag(common.album),
    year: yearOf(common.year ?? common.date),
  };
}

/** A tag as shown: trimmed, null when empty (the result's bounds cut it to a kilobyte). */
export const tag = (value: string | undefined): string | null => value?.trim() || null;

/** The year of a tag (`2021`, `2021-03-04`, or a number), null when it has none that could be one. */
export function yearOf(value: string | number | undefined): number | null {
  const year = typeof value === 'number' ? value : Number(/^\s*(\d{4})/.exec(value ?? '')?.[1]);
  return Number.isInteger(year) && year > 0 && year <= 9999 ? year : null;
}

/** Seconds rounded to the millisecond: what a person can use of a float the headers' arithmetic made. */
export const toMilliseconds = (seconds: number | null): number | null =>
  seconds === null ? null : Math.round(seconds * 1000) / 1000;

/**
 * The blob for music-metadata, read through 64 KiB windows and seeking over what it skips: parseFile made a system
 * call per header (200,000 empty MP4 boxes: 18 s, now 1 s), and a stream reads the samples it skips (a 5 MiB WAV:
 * 18 ms instead of 1).
 */
class WindowedTokenizer extends AbstractTokenizer {
  readonly fileInfo: IFileInfo & { size: number };

  /** `size`: the file's, or less to read only so far; `skipped`: bytes at its start left unseen, as if not there. */
  constructor(
    private readonly windowed: WindowedFile,
    size: number,
    private readonly skipped = 0,
  ) {
    super();
    this.fileInfo = { size: Math.max(0, size - skipped) };
  }

  supportsRandomAccess(): boolean {
    return true;
  }

  setPosition(position: number): void {
    this.position = position;
  }

  async readBuffer(target: Uint8Array, options?: IReadChunkOptions): Promise<number> {
    const read = await this.peekBuffer(target, options);
    this.position = (options?.position ?? this.position) + read;
    return read;
  }

  async peekBuffer(target: Uint8Array, options?: IReadChunkOptions): Promise<number> {
    const position = options?.position ?? this.position;
    const length = options?.length ?? target.length;
    // Never past the size given: a reading capped short of the file's end ends there.
    const bytes = await this.windowed.bytesAt(
      this.skipped + position,
      Math.max(0, Math.min(length, this.fileInfo.size - position)),
    );
    if (bytes.length < length && !options?.mayBeLess) throw new EndOfStreamError();
    target.set(bytes);
    return bytes.length;
  }
}

/** A RIFF file (WAV, AVI) declares its length up front: a shorter file was cut short. */
async function riffWarnings(reader: BlobReader, size: number): Promise<string[]> {
  const header = Buffer.alloc(8);
  const { bytesRead } = await reader.read(header, 0, 8, 0);
  if (bytesRead < 8 || header.toString('latin1', 0, 4) !== 'RIFF') return [];
  const declared = header.readUInt32LE(4) + 8;
  return declared > size
    ? [`The RIFF header declares ${declared} bytes but the file has ${size}; it is truncated.`]
    : [];
}

const finiteOrNull = (value: number | undefined): number | null =>
  value !== undefined && Number.isFinite(value) ? value : null;

/** A warning when the headers describe no playable stream (a container cut short, most often). */
export function durationWarnings(fields: MediaFields): string[] {
  return fields.duration_seconds === null || fields.duration_seconds === 0
    ? ['The container declares no duration; the file may be truncated or empty.']
    : [];
}
