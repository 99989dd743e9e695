// Kind `image`, with sharp (libvips): what the header says, then a 256-px WebP thumbnail. The declared
// size is checked before a pixel is decoded, so a decompression bomb fails cheaply with image_too_large.
import sharp from 'sharp';
import type { CommonResult } from '../../core/results/index.js';
import type { ImageResult } from '../../core/results/image.js';
import { withLocalFile } from './blobSource.js';
import { analyzingProcessor } from './common.js';
import { ProcessingError, type Analyzed, type AnalysisInput, type ProcessingLimits } from './types.js';

const THUMBNAIL_SIZE = 256;

// One decode per file: libvips' operation cache would only hold memory, and parallelism comes from jobs.
sharp.cache(false);
sharp.concurrency(1);

type ImageFields = Omit<ImageResult, keyof CommonResult>;

/** sharp reads a file, or a buffer (a stream it gathers into one): an object is copied to a file, not held in memory. */
export function analyzeImage({ source, limits }: AnalysisInput): Promise<Analyzed<ImageFields>> {
  return withLocalFile(source, (path) => analyzeImageFile(path, limits));
}

async function analyzeImageFile(path: string, limits: ProcessingLimits): Promise<Analyzed<ImageFields>> {
  const metadata = await sharp(path, { limitInputPixels: false })
    .metadata()
    .catch((err: unknown) => {
      throw asImageError(err, path);
    });
  const { width, height } = metadata;
  if (!width || !height) throw new ProcessingError('corrupt_file', 'The image declares no dimensions.');
  if (width * height > limits.maxImagePixels) {
    throw new ProcessingError(
      'image_too_large',
      `The image declares ${width}×${height} pixels, more than the limit of ${limits.maxImagePixels}; it was not decoded.`,
    );
  }
  // Strict: a warning from the decoder (a truncated or damaged image) fails the file rather than showing half of it.
  const preview = await thumbnail(path, limits.maxImagePixels).catch((err: unknown) => {
    throw asImageError(err, path);
  });
  return {
    fields: {
      format: metadata.format,
      width,
      height,
      orientation: metadata.orientation ?? null,
      alpha: metadata.hasAlpha,
      pages: metadata.pages ?? 1,
      color_space: metadata.space ?? null,
      thumbnail: { width: preview.info.width, height: preview.info.height, bytes: preview.data.length },
    },
    warnings: [],
    thumbnail: preview.data,
  };
}

function thumbnail(path: string, maxPixels: number) {
  return sharp(path, { limitInputPixels: maxPixels, failOn: 'warning' })
    .autoOrient()
    .resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: 'inside', withoutEnlargement: true })
    .webp({ quality: 80 })
    .toBuffer({ resolveWithObject: true });
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
