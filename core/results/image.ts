import { Type, type Static } from '@sinclair/typebox';
import { BEFORE_IT_EXISTED, kindResult, OrNull } from './common.js';

/** A WebP rendering's size, as stored; both are made from one decode. */
const rendering = (variant: 'thumbnail' | 'preview', maxSide: number) =>
  Type.Object(
    {
      width: Type.Integer({ minimum: 1 }),
      height: Type.Integer({ minimum: 1 }),
      bytes: Type.Integer({ minimum: 1 }),
    },
    {
      description:
        `The WebP rendering served at \`GET /files/{id}/${variant}\`: at most ${maxSide} px on its longer side, upright, never enlarged; ` +
        '`null` for an image too costly to decode (more scans or frames than the service decodes, with a warning).',
    },
  );

export const ImageResultSchema = kindResult('ImageResult', 'The result of a file of kind `image`.', {
  format: Type.String({
    description: 'Format the decoder read: `jpeg`, `png`, `webp`, `gif`, `tiff`, `avif`, `heif`, `bmp`, ...',
    examples: ['jpeg'],
  }),
  width: Type.Integer({ minimum: 1, description: 'Width in pixels as stored (before EXIF orientation).' }),
  height: Type.Integer({ minimum: 1, description: 'Height in pixels of one page or frame, as stored.' }),
  orientation: OrNull(
    Type.Integer({
      minimum: 1,
      maximum: 8,
      description: 'EXIF orientation (1 = upright; 6 = rotate 90° clockwise to display).',
    }),
  ),
  alpha: Type.Boolean({ description: 'The image has an alpha channel.' }),
  pages: Type.Integer({ minimum: 1, description: 'Pages or animation frames (1 for a still image).' }),
  color_space: OrNull(Type.String({ description: 'Colour space the decoder reports (`srgb`, `cmyk`, `b-w`, ...).' })),
  make: Type.Optional(
    OrNull(
      Type.String({
        description: `The camera's maker, from EXIF (\`Make\`). ${BEFORE_IT_EXISTED}`,
        examples: ['Canon'],
      }),
    ),
  ),
  model: Type.Optional(
    OrNull(
      Type.String({
        description: `The camera's model, from EXIF (\`Model\`). ${BEFORE_IT_EXISTED}`,
        examples: ['EOS 5D'],
      }),
    ),
  ),
  taken_at: Type.Optional(
    OrNull(
      Type.String({
        description:
          'When the picture was taken, from EXIF `DateTimeOriginal`, in ISO 8601: with the offset from UTC when the ' +
          "camera recorded one (`OffsetTimeOriginal`, e.g. `2024-05-17T14:03:22+02:00`), else the camera's local " +
          `time without an offset (\`2024-05-17T14:03:22\`), which may be any time zone. ${BEFORE_IT_EXISTED}`,
        examples: ['2024-05-17T14:03:22+02:00'],
      }),
    ),
  ),
  gps: Type.Optional(
    OrNull(
      Type.Object(
        {
          lat: Type.Number({ minimum: -90, maximum: 90, description: 'Latitude in decimal degrees, south negative.' }),
          lon: Type.Number({
            minimum: -180,
            maximum: 180,
            description: 'Longitude in decimal degrees, west negative.',
          }),
        },
        { description: `Where the picture was taken, from EXIF GPS; null when it does not say. ${BEFORE_IT_EXISTED}` },
      ),
    ),
  ),
  thumbnail: OrNull(rendering('thumbnail', 256)),
  preview: OrNull(rendering('preview', 1024)),
});
export type ImageResult = Static<typeof ImageResultSchema>;
