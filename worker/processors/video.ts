// Kind `video`: the container's headers through music-metadata (see media.ts), plus the frame size:
// Matroska/WebM tracks carry it there; for MP4 and QuickTime it (and the duration of a video without
// audio, which music-metadata leaves out) is read from the movie and track headers (mvhd, tkhd).
import type { CommonResult } from '../../core/results/index.js';
import type { VideoResult } from '../../core/results/media.js';
import type { BlobSource } from '../../core/storage/index.js';
import { isAvi, readAvi } from './avi.js';
import { withBlob } from './blobSource.js';
import { analyzingProcessor, WindowedFile } from './common.js';
import { readMediaHeaders, durationWarnings, toMilliseconds } from './media.js';
import type { Analyzed, AnalysisInput } from './types.js';
import { withRenderings } from '../renderers/index.js';
import { videoPoster } from '../renderers/media.js';

type VideoFields = Omit<VideoResult, keyof CommonResult>;

/** A moov box larger than this is not read for the frame size (its other fields still are). */
const MAX_MOOV_BYTES = 64 * 1024 * 1024;

export async function analyzeVideo({ source, contentType, size }: AnalysisInput): Promise<Analyzed<VideoFields>> {
  const avi = await withBlob(source, async (reader) => {
    const head = Buffer.alloc(12);
    const { bytesRead } = await reader.read(head, 0, head.length, 0);
    return isAvi(head.subarray(0, bytesRead)) ? readAvi(reader, size) : null;
  });
  if (avi) return { fields: avi.fields, warnings: [...avi.warnings, ...durationWarnings(avi.fields)] };
  const { fields, metadata, warnings, durationUnread } = await readMediaHeaders(source, contentType, size);
  const track = metadata.format.trackInfo.find((info) => info.video?.pixelWidth && info.video.pixelHeight)?.video;
  // The movie header fills in what the tracks leave out: the frame size, or the duration of a video without audio.
  const movie = track && fields.duration_seconds !== null ? null : await isoMovieHeaders(source, size);
  const video: VideoFields = {
    ...fields,
    duration_seconds: fields.duration_seconds ?? toMilliseconds(movie?.duration_seconds ?? null),
    width: track?.pixelWidth ?? movie?.width ?? null,
    height: track?.pixelHeight ?? movie?.height ?? null,
  };
  return { fields: video, warnings: durationUnread ? warnings : [...warnings, ...durationWarnings(video)] };
}

interface MovieHeaders {
  duration_seconds: number | null;
  width: number | null;
  height: number | null;
}

interface Box {
  type: string;
  /** Offset of the content, after the header. */
  start: number;
  end: number;
}

/** The boxes directly inside `data[from, to)`. */
function* boxesIn(data: Buffer, from: number, to: number): Generator<Box> {
  for (let at = from; at + 8 <= to;) {
    let size = data.readUInt32BE(at);
    let header = 8;
    if (size === 1 && at + 16 <= to) {
      size = Number(data.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) {
      size = to - at;
    }
    if (size < header || at + size > to) return;
    yield { type: data.toString('latin1', at + 4, at + 8), start: at + header, end: at + size };
    at += size;
  }
}

/** The ISO base media (MP4, QuickTime) movie's duration and frame size, from its moov box. */
function isoMovieHeaders(source: BlobSource, size: number): Promise<MovieHeaders | null> {
  return withBlob(source, async (reader) => {
    const windowed = new WindowedFile(reader);
    for (let at = 0; at + 8 <= size;) {
      const header = await windowed.bytesAt(at, 16);
      if (header.length < 8) return null;
      let boxSize = header.readUInt32BE(0);
      if (boxSize === 1 && header.length === 16) boxSize = Number(header.readBigUInt64BE(8));
      else if (boxSize === 0) boxSize = size - at;
      if (boxSize < 8) return null;
      if (header.toString('latin1', 4, 8) === 'moov') {
        if (boxSize > MAX_MOOV_BYTES || at + boxSize > size) return null;
        const moov = Buffer.alloc(boxSize);
        await reader.read(moov, 0, boxSize, at);
        return movieHeadersIn(moov);
      }
      at += boxSize;
    }
    return null;
  });
}

function movieHeadersIn(moov: Buffer): MovieHeaders {
  const found: MovieHeaders = { duration_seconds: null, width: null, height: null };
  for (const child of boxesIn(moov, 8, moov.length)) {
    if (child.type === 'mvhd' && child.end - child.start >= 32) {
      // Version 1 has 64-bit times: timescale at 20, duration at 24; version 0 at 12 and 16.
      const v1 = moov[child.start] === 1;
      const timescale = moov.readUInt32BE(child.start + (v1 ? 20 : 12));
      const duration = v1 ? Number(moov.readBigUInt64BE(child.start + 24)) : moov.readUInt32BE(child.start + 16);
      if (timescale > 0) found.duration_seconds = duration / timescale;
    }
    if (child.type !== 'trak' || found.width !== null) continue;
    for (const box of boxesIn(moov, child.start, child.end)) {
      if (box.type !== 'tkhd' || box.end - box.start < 84) continue;
      // Width and height close the track header, in 16.16 fixed point; audio tracks declare 0.
      const width = moov.readUInt32BE(box.end - 8) / 65536;
      const height = moov.readUInt32BE(box.end - 4) / 65536;
      if (width > 0 && height > 0) Object.assign(found, { width: Math.round(width), height: Math.round(height) });
    }
  }
  return found;
}

/** The analysis and a poster frame (see renderers/media.ts). */
export async function analyzeAndRenderVideo(input: AnalysisInput): Promise<Analyzed<VideoFields>> {
  const analyzed = await analyzeVideo(input);
  return withRenderings(analyzed, input, videoPoster(analyzed.fields.duration_seconds));
}

export const videoProcessor = analyzingProcessor(import.meta.url, analyzeAndRenderVideo);
