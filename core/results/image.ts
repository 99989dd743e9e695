import { Type, type Static } from '@sinclair/typebox';
import { kindResult, OrNull } from './common.js';

export const ImageResultSchema = kindResult('ImageResult', 'The result of a file of kind `image`.', {
  format: Type.String({
    description: 'Format the decoder read: `jpeg`, `png`, `webp`, `gif`, `tiff`, `avif`, `heif`, ...',
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
  thumbnail: OrNull(
    Type.Object(
      {
        width: Type.Integer({ minimum: 1 }),
        height: Type.Integer({ minimum: 1 }),
        bytes: Type.Integer({ minimum: 1 }),
      },
      {
        description:
          'The WebP preview served at `GET /files/{id}/thumbnail`: at most 256 px on its longer side, upright; ' +
          '`null` for an image too costly to decode (more scans or frames than the service decodes, with a warning).',
      },
    ),
  ),
});
export type ImageResult = Static<typeof ImageResultSchema>;
