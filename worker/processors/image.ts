// Kind `image`, with sharp (libvips): what the header says, then WebP renderings of 256 and 1024 px. The declared
// size is checked before a pixel is decoded, so a decompression bomb fails cheaply with image_too_large; a walk
// of our own counts first what libvips would do work for per item (scans, frames, directories), against caps.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp, { type Metadata } from 'sharp';
import type { CommonResult } from '../../core/results/index.js';
import type { ImageResult } from '../../core/results/image.js';
import { withBlob, withLocalFile, type BlobReader } from './blobSource.js';
import { isBmp, readBmpHeader, readBmpPixels } from './bmp.js';
import { analyzingProcessor } from './common.js';
import { NO_EXIF, readExif } from './exif.js';
import { imageStructure, type Canvas } from './imageStructure.js';
import { runTool, withToolDirectory, type ToolLimits } from '../externalTool.js';
import { renderWebP, sizeOf } from '../renderers/webp.js';
import { ProcessingError, type Analyzed, type AnalysisInput, type ProcessingLimits } from './types.js';

/** libvips decodes every block once per scan; encoders write 6 to 12, 100 of a 50-megapixel JPEG take 0.9 s (40,000 of a 4096²: 51 s). */
export const JPEG_MAX_SCANS = 100;
/** libvips reads every frame header of a GIF at each open: 100,000 (33 minutes at 50 a second) take 0.1 to 0.3 s, 1,000,000 up to 12 s. */
export const GIF_MAX_FRAMES = 100_000;
/** libwebp's demuxer finds each frame from the first, so libvips' cost grows as the square: 10,000 take 0.4 s, 200,000 over 60 s. */
export const WEBP_MAX_FRAMES = 10_000;
/** libvips reads every directory of a TIFF in full at each open to count pages: 10,000 take 0.6 s, 600,000 35 s. */
export const TIFF_MAX_DIRECTORIES = 10_000;

// One decode per file: libvips' operation cache would only hold memory, and parallelism comes from jobs.
sharp.cache(false);
sharp.concurrency(1);

type ImageFields = Omit<ImageResult, keyof CommonResult>;

/** sharp reads a file, or a buffer (a stream it gathers into one): an object is copied to a file, not held in memory. */
export function analyzeImage({ source, limits, tools }: AnalysisInput): Promise<Analyzed<ImageFields>> {
  return withLocalFile(source, (path) => analyzeImageFile(path, limits, tools));
}

async function analyzeImageFile(
  path: string,
  limits: ProcessingLimits,
  tools: ToolLimits | undefined,
): Promise<Analyzed<ImageFields>> {
  const bmp = await withBlob({ path }, async (reader) =>
    isBmp(await headOf(reader)) ? analyzeBmp(reader, limits) : null,
  );
  if (bmp) return bmp;
  const structure = await withBlob({ path }, (reader) =>
    imageStructure(reader, { jpegScans: JPEG_MAX_SCANS, tiffDirectories: TIFF_MAX_DIRECTORIES }),
  );
  if (structure?.format === 'tiff' && structure.directories > TIFF_MAX_DIRECTORIES) {
    throw new ProcessingError(
      'too_complex',
      `The TIFF has more than ${TIFF_MAX_DIRECTORIES} directories (pages), the most this service reads; it was not decoded.`,
    );
  }
  if ((structure?.format === 'gif' || structure?.format === 'webp') && structure.canvas) {
    const cap = structure.format === 'gif' ? GIF_MAX_FRAMES : WEBP_MAX_FRAMES;
    if (structure.frames > cap)
      return countedAnimation(structure.format, structure.frames, structure.canvas, cap, limits);
  }
  const metadata = await sharp(path, { limitInputPixels: false })
    .metadata()
    .catch((err: unknown) => {
      throw asImageError(err, path);
    });
  const { width, height } = metadata;
  if (!width || !height) throw new ProcessingError('corrupt_file', 'The image declares no dimensions.');
  checkDeclaredSize(width, height, limits);
  if (metadata.format === 'heif' && metadata.compression === 'hevc')
    return analyzeHeic(path, headerFields(metadata, width, height), limits, tools);
  if (structure?.format === 'jpeg' && structure.scans > JPEG_MAX_SCANS) {
    return {
      fields: { ...headerFields(metadata, width, height), thumbnail: null, preview: null },
      warnings: [
        `The JPEG has more than ${JPEG_MAX_SCANS} scans, the most this service decodes; its header was read but not its pixels, so it has no thumbnail or preview.`,
      ],
    };
  }
  // Strict: a warning from the decoder (a truncated or damaged image) fails the file rather than showing half of it.
  const { thumbnail, preview } = await renderWebP(path, { maxPixels: limits.maxImagePixels, strict: true }).catch(
    (err: unknown) => {
      throw asImageError(err, path);
    },
  );
  return {
    fields: { ...headerFields(metadata, width, height), thumbnail: sizeOf(thumbnail), preview: sizeOf(preview) },
    warnings: [],
    thumbnail: thumbnail.data,
    preview: preview.data,
  };
}

async function headOf(reader: BlobReader): Promise<Buffer> {
  const head = Buffer.alloc(18);
  const { bytesRead } = await reader.read(head, 0, head.length, 0);
  return head.subarray(0, bytesRead);
}

/** A BMP, which libvips does not load: our header reader, and uncompressed pixels given to sharp as raw rows. */
async function analyzeBmp(reader: BlobReader, limits: ProcessingLimits): Promise<Analyzed<ImageFields>> {
  const header = await readBmpHeader(reader);
  const { width, height } = header;
  checkDeclaredSize(width, height, limits);
  const fields = {
    format: 'bmp',
    width,
    height,
    orientation: null,
    alpha: header.alpha,
    pages: 1,
    color_space: 'srgb',
    ...NO_EXIF,
  };
  const pixels = await readBmpPixels(reader, header);
  if (!pixels) {
    return {
      fields: { ...fields, thumbnail: null, preview: null },
      warnings: [
        'The BMP is compressed (RLE, JPEG or PNG inside); its header was read but not its pixels, so it has no thumbnail or preview.',
      ],
    };
  }
  const { thumbnail, preview } = await renderWebP(
    { data: pixels.data, width, height, channels: pixels.channels },
    { maxPixels: limits.maxImagePixels },
  );
  return {
    fields: { ...fields, thumbnail: sizeOf(thumbnail), preview: sizeOf(preview) },
    warnings: [],
    thumbnail: thumbnail.data,
    preview: preview.data,
  };
}

/**
 * HEIC (HEVC in a HEIF container), whose pixels sharp's prebuilt libvips cannot decode (HEVC is left out of it):
 * libheif's heif-convert draws the image, upright, into a PNG in its own directory under the tools' limits, once the
 * declared size passed the pixel limit; the renderings are made of that PNG. Several images in the file: the first.
 */
async function analyzeHeic(
  path: string,
  header: Omit<ImageFields, 'thumbnail' | 'preview'>,
  limits: ProcessingLimits,
  tools: ToolLimits | undefined,
): Promise<Analyzed<ImageFields>> {
  // An analysis run on its own, outside a job, has no tool limits: no tool is run.
  if (!tools) return { fields: { ...header, thumbnail: null, preview: null }, warnings: [] };
  return withToolDirectory(async (dir) => {
    await runTool({
      tool: 'heif-convert',
      args: [path, join(dir, 'image.png')],
      dir,
      limits: tools,
      purpose: 'decode the HEIC image',
    });
    const [drawn] = (await readdir(dir)).filter((name) => name.endsWith('.png')).sort();
    if (!drawn) throw new ProcessingError('corrupt_file', 'The HEIC file holds no image that could be decoded.');
    const { thumbnail, preview } = await renderWebP(join(dir, drawn), { maxPixels: limits.maxImagePixels });
    return {
      fields: { ...header, thumbnail: sizeOf(thumbnail), preview: sizeOf(preview) },
      warnings: [],
      thumbnail: thumbnail.data,
      preview: preview.data,
    };
  });
}

/** A decompression bomb fails before a pixel is decoded. */
function checkDeclaredSize(width: number, height: number, limits: ProcessingLimits): void {
  if (width * height > limits.maxImagePixels) {
    throw new ProcessingError(
      'image_too_large',
      `The image declares ${width}×${height} pixels, more than the limit of ${limits.maxImagePixels}; it was not decoded.`,
    );
  }
}

function headerFields(metadata: Metadata, width: number, height: number): Omit<ImageFields, 'thumbnail' | 'preview'> {
  return {
    format: metadata.format,
    width,
    height,
    orientation: metadata.orientation ?? null,
    alpha: metadata.hasAlpha,
    pages: metadata.pages ?? 1,
    color_space: metadata.space ?? null,
    ...readExif(metadata.exif),
  };
}

/** An animation past its frame cap, told from our own walk: libvips is not given it at all. */
function countedAnimation(
  format: 'gif' | 'webp',
  frames: number,
  { width, height, alpha }: Canvas,
  cap: number,
  limits: ProcessingLimits,
): Analyzed<ImageFields> {
  checkDeclaredSize(width, height, limits);
  return {
    // Both decode to sRGB; the orientation is left unread with the rest of the frames.
    fields: {
      format,
      width,
      height,
      orientation: null,
      alpha,
      pages: frames,
      color_space: 'srgb',
      ...NO_EXIF,
      thumbnail: null,
      preview: null,
    },
    warnings: [
      `The ${format === 'gif' ? 'GIF' : 'WebP'} has ${frames} frames, more than the ${cap} this service decodes; its frames were counted but not decoded, so it has no thumbnail or preview.`,
    ],
  };
}

function asImageError(err: unknown, path: string): Error {
  const reason = reasonOf(err, path);
  if (/pixel limit/i.test(reason))
    return new ProcessingError('image_too_large', `The image has more pixels than the limit (${reason}).`);
  if (/unsupported image format/i.test(reason))
    return new ProcessingError('unsupported_format', 'This image format cannot be decoded.');
  if (/input file is missing/i.test(reason)) return err as Error;
  return new ProcessingError('corrupt_file', `The image could not be decoded (${reason}).`);
}

/** sharp's first line, without the local path. */
const reasonOf = (err: unknown, path: string): string =>
  String((err as Error)?.message ?? err)
    .split('\n')[0]!
    .replaceAll(path, 'the file')
    .trim();

export const imageProcessor = analyzingProcessor(import.meta.url, analyzeImage);
