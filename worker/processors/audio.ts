// Kind `audio`: the container's headers, through music-metadata (see media.ts).
import type { CommonResult } from '../../core/results/index.js';
import type { AudioResult } from '../../core/results/media.js';
import { analyzingProcessor } from './common.js';
import { readMediaHeaders, durationWarnings } from './media.js';
import type { Analyzed, AnalysisInput } from './types.js';

export async function analyzeAudio({
  source,
  contentType,
  size,
}: AnalysisInput): Promise<Analyzed<Omit<AudioResult, keyof CommonResult>>> {
  const { fields, warnings, durationUnread } = await readMediaHeaders(source, contentType, size);
  return { fields, warnings: durationUnread ? warnings : [...warnings, ...durationWarnings(fields)] };
}

export const audioProcessor = analyzingProcessor(import.meta.url, analyzeAudio);
