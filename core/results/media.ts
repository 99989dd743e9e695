import { Type, type Static } from '@sinclair/typebox';
import { BEFORE_IT_EXISTED, kindResult, OrNull } from './common.js';

/** Media containers that file-type names under `application/`, by the kind they hold. */
const APPLICATION_MEDIA: Readonly<Record<string, 'audio' | 'video'>> = {
  'application/ogg': 'audio',
  'application/vnd.ms-asf': 'video',
  'application/mxf': 'video',
  'application/vnd.rn-realmedia': 'video',
};

export const isAudio = (mime: string) => mime.startsWith('audio/') || APPLICATION_MEDIA[mime] === 'audio';
export const isVideo = (mime: string) => mime.startsWith('video/') || APPLICATION_MEDIA[mime] === 'video';

const TAG_SOURCES =
  'From ID3v2 or ID3v1 (MP3), Vorbis comments (Ogg, Opus, FLAC), MP4 `ilst` atoms, RIFF INFO (WAV, AVI) or ' +
  'Matroska tags; null when the file has none.';

const mediaFields = {
  container: OrNull(Type.String({ description: 'Container format, e.g. `MPEG`, `WAVE`, `MPEG-4`, `EBML/webm`.' })),
  duration_seconds: OrNull(
    Type.Number({
      minimum: 0,
      description:
        'Seconds, rounded to the millisecond (rounded to milliseconds since issue 28; earlier results are not).',
    }),
  ),
  codecs: Type.Array(Type.String(), { description: 'Codecs of the streams, e.g. `MPEG 1 Layer 3`, `PCM`, `AVC`.' }),
  bitrate: OrNull(Type.Number({ minimum: 0, description: 'Bits per second.' })),
  sample_rate: OrNull(Type.Integer({ minimum: 0, description: 'Audio samples per second.' })),
  channels: OrNull(Type.Integer({ minimum: 0, description: 'Audio channels.' })),
  title: Type.Optional(OrNull(Type.String({ description: `The title tag. ${TAG_SOURCES} ${BEFORE_IT_EXISTED}` }))),
  artist: Type.Optional(OrNull(Type.String({ description: `The artist tag. ${TAG_SOURCES} ${BEFORE_IT_EXISTED}` }))),
  album: Type.Optional(
    OrNull(Type.String({ description: `The album tag (AVI: the product, IPRD). ${TAG_SOURCES} ${BEFORE_IT_EXISTED}` })),
  ),
  year: Type.Optional(
    OrNull(
      Type.Integer({
        minimum: 0,
        maximum: 9999,
        description: `The year of the recording or release date tag. ${TAG_SOURCES} ${BEFORE_IT_EXISTED}`,
      }),
    ),
  ),
};

export const AudioResultSchema = kindResult(
  'AudioResult',
  'The result of a file of kind `audio`, read from the container headers.',
  mediaFields,
);
export type AudioResult = Static<typeof AudioResultSchema>;

export const VideoResultSchema = kindResult(
  'VideoResult',
  'The result of a file of kind `video`, read from the container headers.',
  {
    ...mediaFields,
    width: OrNull(Type.Integer({ minimum: 0, description: 'Frame width in pixels, where the container says.' })),
    height: OrNull(Type.Integer({ minimum: 0, description: 'Frame height in pixels, where the container says.' })),
    frame_rate: Type.Optional(
      OrNull(
        Type.Number({
          minimum: 0,
          description: `Frames per second, where the container says (AVI's stream header). ${BEFORE_IT_EXISTED}`,
        }),
      ),
    ),
  },
);
export type VideoResult = Static<typeof VideoResultSchema>;
