import { Type, type Static } from '@sinclair/typebox';
import { kindResult, OrNull } from './common.js';

/** Media containers that file-type names under `application/`, by the kind they hold. */
const APPLICATION_MEDIA: Readonly<Record<string, 'audio' | 'video'>> = {
  'application/ogg': 'audio',
  'application/vnd.ms-asf': 'video',
  'application/mxf': 'video',
  'application/vnd.rn-realmedia': 'video',
};

export const isAudio = (mime: string) => mime.startsWith('audio/') || APPLICATION_MEDIA[mime] === 'audio';
export const isVideo = (mime: string) => mime.startsWith('video/') || APPLICATION_MEDIA[mime] === 'video';

const mediaFields = {
  container: OrNull(Type.String({ description: 'Container format, e.g. `MPEG`, `WAVE`, `MPEG-4`, `EBML/webm`.' })),
  duration_seconds: OrNull(Type.Number({ minimum: 0 })),
  codecs: Type.Array(Type.String(), { description: 'Codecs of the streams, e.g. `MPEG 1 Layer 3`, `PCM`, `AVC`.' }),
  bitrate: OrNull(Type.Number({ minimum: 0, description: 'Bits per second.' })),
  sample_rate: OrNull(Type.Integer({ minimum: 0, description: 'Audio samples per second.' })),
  channels: OrNull(Type.Integer({ minimum: 0, description: 'Audio channels.' })),
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
  },
);
export type VideoResult = Static<typeof VideoResultSchema>;
