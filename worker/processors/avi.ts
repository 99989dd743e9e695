// AVI, read by a RIFF walk of our own (music-metadata does not read AVI): the main header (avih), each stream's
// header and format (strh, strf) and the INFO tags. Bounded: the header list and the tags are read whole only up to
// a cap, at most MAX_CHUNKS chunks are looked at per list and MAX_STREAMS streams; the frames (movi) are skipped
// by their size, never read. What makes no sense ends the walk; a file without a main header fails in our words.
import type { CommonResult } from '../../core/results/index.js';
import type { VideoResult } from '../../core/results/media.js';
import type { BlobReader } from './blobSource.js';
import { tag, toMilliseconds, yearOf } from './media.js';
import { ProcessingError } from './types.js';

type VideoFields = Omit<VideoResult, keyof CommonResult>;

/** The header list (hdrl) read at most; ffmpeg writes 8 to 10 KiB, padding included. */
const MAX_HEADER_LIST_BYTES = 1024 * 1024;
/** The INFO list read at most: a few tags. */
const MAX_INFO_BYTES = 64 * 1024;
/** Chunks looked at in one list, or at the top level. */
const MAX_CHUNKS = 1024;
/** Streams read; a film has two or three. */
const MAX_STREAMS = 16;

/** WAVEFORMATEX format tags, by the names music-metadata gives the same codecs in WAV. */
const AUDIO_FORMATS: Partial<Record<number, string>> = {
  0x0001: 'PCM',
  0x0003: 'IEEE_FLOAT',
  0x0006: 'A-law',
  0x0007: 'µ-law',
  0x0050: 'MPEG 1 Layer 1/2',
  0x0055: 'MPEG 1 Layer 3',
  0x00ff: 'AAC',
  0x2000: 'AC-3',
  0x2001: 'DTS',
  0xfffe: 'EXTENSIBLE',
};

interface Chunk {
  id: string;
  /** For a LIST or RIFF: its list type. */
  listType: string | null;
  /** Offset of the content (after the list type for a list) in the buffer or file. */
  start: number;
  end: number;
}

/** The chunks directly inside `data[from, to)`, at most MAX_CHUNKS; a chunk that overruns the range ends the walk. */
function* chunksIn(data: Buffer, from: number, to: number): Generator<Chunk> {
  let count = 0;
  for (let at = from; at + 8 <= to && count < MAX_CHUNKS; count++) {
    const id = data.toString('latin1', at, at + 4);
    const size = data.readUInt32LE(at + 4);
    const end = at + 8 + size;
    if (end > to) return;
    const list = id === 'LIST' && size >= 4;
    yield { id, listType: list ? data.toString('latin1', at + 8, at + 12) : null, start: at + (list ? 12 : 8), end };
    at = end + (size % 2); // chunks are padded to an even length
  }
}

export const isAvi = (head: Buffer): boolean =>
  head.length >= 12 && head.toString('latin1', 0, 4) === 'RIFF' && head.toString('latin1', 8, 12) === 'AVI ';

interface Stream {
  type: string;
  handler: string;
  scale: number;
  rate: number;
  length: number;
  format: Buffer | null;
}

/** The AVI's fields and warnings; a ProcessingError in our words when it has no readable main header. */
export async function readAvi(reader: BlobReader, size: number): Promise<{ fields: VideoFields; warnings: string[] }> {
  const header = await readAt(reader, 0, 12);
  const warnings: string[] = [];
  const declared = header.readUInt32LE(4) + 8;
  if (declared > size)
    warnings.push(`The RIFF header declares ${declared} bytes but the file has ${size}; it is truncated.`);
  let headerList: Buffer | null = null;
  let info: Buffer | null = null;
  // The top level: headers, tags, frames (skipped by their size) and the index, each found by its chunk header alone.
  let at = 12;
  for (let count = 0; at + 12 <= size && count < MAX_CHUNKS && !(headerList && info); count++) {
    const chunk = await readAt(reader, at, 12);
    if (chunk.length < 12) break;
    const bytes = chunk.readUInt32LE(4);
    const listType = chunk.toString('latin1', 8, 12);
    if (chunk.toString('latin1', 0, 4) === 'LIST' && listType === 'hdrl' && !headerList)
      headerList = await readAt(reader, at + 12, Math.min(bytes - 4, MAX_HEADER_LIST_BYTES));
    if (chunk.toString('latin1', 0, 4) === 'LIST' && listType === 'INFO' && !info)
      info = await readAt(reader, at + 12, Math.min(bytes - 4, MAX_INFO_BYTES));
    at += 8 + bytes + (bytes % 2);
  }
  const main = headerList ? [...chunksIn(headerList, 0, headerList.length)].find((c) => c.id === 'avih') : undefined;
  if (!headerList || !main || main.end - main.start < 40)
    throw new ProcessingError('corrupt_file', 'The AVI has no main header (avih); it is damaged or truncated.');
  const streams = streamsIn(headerList);
  return { fields: fieldsOf(headerList, main.start, streams, info, size), warnings };
}

async function readAt(reader: BlobReader, position: number, length: number): Promise<Buffer> {
  const bytes = Buffer.alloc(Math.max(0, length));
  const { bytesRead } = await reader.read(bytes, 0, bytes.length, position);
  return bytes.subarray(0, bytesRead);
}

/** Each stream list (strl) of the header list: its header (strh) and its format (strf). */
function streamsIn(headerList: Buffer): Stream[] {
  const streams: Stream[] = [];
  for (const list of chunksIn(headerList, 0, headerList.length)) {
    if (list.listType !== 'strl' || streams.length >= MAX_STREAMS) continue;
    let stream: Stream | null = null;
    let format: Buffer | null = null;
    for (const chunk of chunksIn(headerList, list.start, list.end)) {
      if (chunk.id === 'strh' && chunk.end - chunk.start >= 36) {
        const at = chunk.start;
        stream = {
          type: headerList.toString('latin1', at, at + 4),
          handler: headerList.toString('latin1', at + 4, at + 8),
          scale: headerList.readUInt32LE(at + 20),
          rate: headerList.readUInt32LE(at + 24),
          length: headerList.readUInt32LE(at + 32),
          format: null,
        };
      }
      if (chunk.id === 'strf') format = headerList.subarray(chunk.start, chunk.end);
    }
    if (stream) streams.push({ ...stream, format });
  }
  return streams;
}

function fieldsOf(headerList: Buffer, avih: number, streams: Stream[], info: Buffer | null, size: number): VideoFields {
  const microsecondsPerFrame = headerList.readUInt32LE(avih);
  const totalFrames = headerList.readUInt32LE(avih + 16);
  const video = streams.find((stream) => stream.type === 'vids');
  const audio = streams.find((stream) => stream.type === 'auds');
  const rate = video && video.scale > 0 && video.rate > 0 ? video.rate / video.scale : null;
  const frameRate = rate ?? (microsecondsPerFrame > 0 ? 1_000_000 / microsecondsPerFrame : null);
  const duration =
    video && rate ? video.length / rate : microsecondsPerFrame > 0 ? (totalFrames * microsecondsPerFrame) / 1e6 : null;
  const bitmap = video?.format && video.format.length >= 20 ? video.format : null;
  const wave = audio?.format && audio.format.length >= 16 ? audio.format : null;
  const codecs: string[] = [];
  // The frames' FourCC (strf's biCompression) names the codec; the stream's handler may name the encoder instead.
  const videoCodec = bitmap
    ? fourCc(bitmap.subarray(16, 20))
    : video
      ? fourCc(Buffer.from(video.handler, 'latin1'))
      : null;
  if (videoCodec) codecs.push(videoCodec);
  if (wave) {
    const formatTag = wave.readUInt16LE(0);
    codecs.push(AUDIO_FORMATS[formatTag] ?? `0x${formatTag.toString(16).padStart(4, '0')}`);
  }
  const tags = infoTags(info);
  const seconds = duration !== null && Number.isFinite(duration) ? toMilliseconds(duration) : null;
  const width = bitmap ? Math.abs(bitmap.readInt32LE(4)) : headerList.readUInt32LE(avih + 32);
  const height = bitmap ? Math.abs(bitmap.readInt32LE(8)) : headerList.readUInt32LE(avih + 36);
  return {
    container: 'AVI',
    duration_seconds: seconds,
    codecs,
    bitrate: seconds ? Math.round((size * 8) / seconds) : null,
    sample_rate: wave ? wave.readUInt32LE(4) : null,
    channels: wave ? wave.readUInt16LE(2) : null,
    title: tags.get('INAM') ?? null,
    artist: tags.get('IART') ?? null,
    album: tags.get('IPRD') ?? null,
    year: yearOf(tags.get('ICRD')),
    width: width || null,
    height: height || null,
    frame_rate: frameRate === null ? null : Math.round(frameRate * 1000) / 1000,
  };
}

/** Four printable characters, trimmed (`FMP4`, `H264`, `MJPG`); null for a code of zeros or binary bytes. */
function fourCc(bytes: Buffer): string | null {
  const text = bytes.toString('latin1');
  return /^[\x20-\x7e]{4}$/.test(text) && text.trim() !== '' ? text.trim() : null;
}

/** The INFO list's text chunks by id (INAM, IART, IPRD, ICRD, ...), each up to its first NUL. */
function infoTags(info: Buffer | null): Map<string, string> {
  const tags = new Map<string, string>();
  if (!info) return tags;
  for (const chunk of chunksIn(info, 0, info.length)) {
    const raw = info.subarray(chunk.start, chunk.end);
    const end = raw.indexOf(0);
    const value = tag(raw.toString('utf8', 0, end < 0 ? raw.length : end));
    if (value !== null && !tags.has(chunk.id)) tags.set(chunk.id, value);
  }
  return tags;
}
