// A video's poster frame and an audio file's waveform, drawn by ffmpeg (reading local files only, never stdin) into a
// PNG no larger than the preview's box and never larger than the source.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { runTool, type ToolLimits } from '../externalTool.js';
import type { Drawn, Renderer } from './index.js';
import { PREVIEW_SIZE } from './webp.js';

/** The poster is the frame at 10% of the video, and never later than this: past titles, near the start. */
const POSTER_AT_MOST_SECONDS = 3;
/** A waveform is drawn of this much of the audio at most: decoding costs time in proportion to the duration. */
const WAVEFORM_MAX_SECONDS = 600;
const WAVEFORM_SIZE = `${PREVIEW_SIZE}x${PREVIEW_SIZE / 4}`;

/** One thread each: the parallelism is the worker's jobs, and the limits are per process. */
const FFMPEG_INPUT = [
  '-nostdin',
  '-v',
  'error',
  '-protocol_whitelist',
  'file',
  '-threads',
  '1',
  '-filter_threads',
  '1',
];

/**
 * What ffmpeg says of a container with headers and no media data (the stream ends before a frame or a sample): there
 * is nothing to draw, which is not damage. Damage (no index, bytes it cannot parse) fails the file.
 */
const NO_MEDIA_DATA = /End of file|after EOF|does not contain any stream/;

const ffmpeg = (args: string[], dir: string, tools: ToolLimits, purpose: string) =>
  runTool({
    tool: 'ffmpeg',
    args: [...FFMPEG_INPUT, ...args],
    dir,
    limits: tools,
    purpose,
    nothingToDo: NO_MEDIA_DATA,
  });

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** A renderer for a video whose header says it lasts `durationSeconds` (or says nothing). */
export const videoPoster =
  (durationSeconds: number | null): Renderer =>
  async (video, dir, tools) => {
    const png = path.join(dir, 'poster.png');
    const at = Math.min(POSTER_AT_MOST_SECONDS, (durationSeconds ?? 0) / 10);
    const grab = (seconds: number) =>
      ffmpeg(
        [
          // Before the input: a seek by the index, not by decoding every frame up to it.
          ...['-ss', seconds.toFixed(3), '-i', `file:${video}`, '-frames:v', '1'],
          ...['-vf', `scale='min(${PREVIEW_SIZE},iw)':'min(${PREVIEW_SIZE},ih)':force_original_aspect_ratio=decrease`],
          ...['-y', png],
        ],
        dir,
        tools,
        "draw the video's poster frame",
      );
    await grab(at);
    // A header that claims a longer video than there is: its first frame, then.
    if (at > 0 && !(await exists(png))) await grab(0);
    return (await exists(png))
      ? { png }
      : { none: 'The video has no frame that could be decoded; it has no thumbnail or preview.' };
  };

/** A renderer for audio whose header says it lasts `durationSeconds` (or says nothing). */
export const audioWaveform =
  (durationSeconds: number | null): Renderer =>
  async (audio, dir, tools): Promise<Drawn> => {
    const png = path.join(dir, 'waveform.png');
    await ffmpeg(
      [
        ...['-t', String(WAVEFORM_MAX_SECONDS), '-i', `file:${audio}`],
        ...['-filter_complex', `showwavespic=s=${WAVEFORM_SIZE}`, '-frames:v', '1', '-y', png],
      ],
      dir,
      tools,
      "draw the audio's waveform",
    );
    if (!(await exists(png)))
      return { none: 'The audio has no sound that could be decoded; it has no thumbnail or preview.' };
    // The header may lie about the length; it is what the reader is told, as the duration is.
    const cut = (durationSeconds ?? 0) > WAVEFORM_MAX_SECONDS;
    return cut
      ? { png, warnings: [`The waveform shows the first ${WAVEFORM_MAX_SECONDS / 60} minutes of the audio.`] }
      : { png };
  };
