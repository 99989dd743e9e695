// Kind `audio`: the container's headers, through music-metadata (see media.ts).
import type { CommonResult } from '../../core/results/index.js';
import type { AudioResult } from '../../core/results/media.js';
import { analyzingProcessor } from './common.js';
import { readMediaHeaders, durationWarnings } from './media.js';
import type { Analyzed, AnalysisInput } from './types.js';
import { withRenderings } from '../renderers/index.js';
import { audioWaveform } from '../renderers/media.js';

export async function analyzeAudio({
  source,
  contentType,
  size,
}: AnalysisInput): Promise<Analyzed<Omit<AudioResult, keyof CommonResult>>> {
  const { fields, warnings, durationUnread } = await readMediaHeaders(source, contentType, size);
  return { fields, warnings: durationUnread ? warnings : [...warnings, ...durationWarnings(fields)] };
}

type AudioFields = Omit<AudioResult, keyof CommonResult>;

/** The analysis and a waveform (see renderers/media.ts). */
export async function analyzeAndRenderAudio(input: AnalysisInput): Promise<Analyzed<AudioFields>> {
  const analyzed = await analyzeAudio(input);
  return withRenderings(analyzed, input, audioWaveform(analyzed.fields.duration_seconds));
}

export const audioProcessor = analyzingProcessor(import.meta.url, analyzeAndRenderAudio);
