// A PDF's first page, drawn by poppler's pdftoppm scaled into the preview's box, whatever size the page declares:
// a MediaBox of 200,000 pt costs what a letter page does. pdftoppm rather than pdf.js with a canvas: measured on the
// same pages, it took 40 to 90 ms and 14 MiB where pdf.js took 50 to 120 ms once warm (230 the first time) and grew the
// parser process by 5 to 40 MiB, and a page of 100,000 strokes by 126 to 318 MiB (over PARSER_MAX_RSS_BYTES) to pdftoppm's 13 MiB.
import path from 'node:path';
import { runTool } from '../externalTool.js';
import type { Renderer } from './index.js';
import { PREVIEW_SIZE } from './webp.js';

export const renderPdfFirstPage: Renderer = async (pdf, dir, tools) => {
  const out = path.join(dir, 'page');
  await runTool({
    tool: 'pdftoppm',
    args: ['-f', '1', '-l', '1', '-scale-to', String(PREVIEW_SIZE), '-png', '-singlefile', pdf, out],
    dir,
    limits: tools,
    purpose: "render the PDF's first page",
  });
  return { png: `${out}.png` };
};
