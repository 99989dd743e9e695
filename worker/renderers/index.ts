// Renderings of the kinds that need a tool to draw them (a PDF's page, a video's frame, an audio's waveform): the
// tool writes a PNG in its own directory under the parsers' limits, and sharp makes the two WebPs of it. Any failure
// of the tool fails the file; a file with nothing to draw (a video without a decodable frame) has none, and says so.
import v8 from 'node:v8';
import { nearlyBounded } from '../../core/results/bounds.js';
import { withLocalFile } from '../processors/blobSource.js';
import type { Analyzed, AnalysisInput } from '../processors/types.js';
import { withToolDirectory, type ToolLimits } from '../externalTool.js';
import { renderWebP } from './webp.js';

/** A heap this large after an analysis is mostly its garbage (a file's megabyte strings, read and cut). */
const LARGE_HEAP_BYTES = 64 * 1024 * 1024;

/**
 * Collects what the analysis left, when it left much: V8, with an old space sized far above the parser's RSS ceiling,
 * would keep it through the tool's run, during which the parser stays busy and its RSS watched, and a file whose
 * analysis fitted would fail out_of_memory for its garbage. `gc` is there in a parser process (v8Flags).
 */
function collectLargeGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc && v8.getHeapStatistics().used_heap_size > LARGE_HEAP_BYTES) gc();
}

/** What a renderer drew: the path of a PNG in `dir`, or why there is none, and what the result should say. */
export type Drawn = { png: string; warnings?: string[] } | { none: string };

/** Draws the file at `path` into `dir` (its own, removed after) with a tool under `tools`. */
export type Renderer = (path: string, dir: string, tools: ToolLimits) => Promise<Drawn>;

/** The analysis with the renderings `render` draws; without tool limits (an analysis run on its own), none. */
export async function withRenderings<F>(
  analyzed: Analyzed<F>,
  { source, tools, limits }: AnalysisInput,
  render: Renderer,
): Promise<Analyzed<F>> {
  if (!tools) return analyzed;
  // the megabytes a file may have put in its fields go before the tool runs, not after
  analyzed = { ...analyzed, fields: nearlyBounded(analyzed.fields) };
  collectLargeGarbage();
  return withLocalFile(source, (path) =>
    withToolDirectory(async (dir) => {
      const drawn = await render(path, dir, tools);
      if ('none' in drawn) return { ...analyzed, warnings: [...analyzed.warnings, drawn.none] };
      const { thumbnail, preview } = await renderWebP(drawn.png, { maxPixels: limits.maxImagePixels });
      return {
        ...analyzed,
        warnings: [...analyzed.warnings, ...(drawn.warnings ?? [])],
        thumbnail: thumbnail.data,
        preview: preview.data,
      };
    }),
  );
}
