// An office document's first page, where the worker has LibreOffice (the documents image): soffice converts the
// document to PDF in the tool's directory, under the same limits as every tool, with a profile of its own that runs no
// macro, and pdftoppm draws that PDF's first page. The document's result comes from our own readers either way; a
// document LibreOffice cannot convert keeps it, without renderings and with a warning.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runTool } from '../externalTool.js';
import { ProcessingError } from '../processors/types.js';
import type { Renderer } from './index.js';
import { renderPdfFirstPage } from './pdfPage.js';

/** A profile that never runs a macro, whatever the document asks: the highest security level, and execution off. */
const NO_MACROS = `<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
</oor:items>
`;

export const renderOfficeFirstPage: Renderer = async (document, dir, tools) => {
  const profile = path.join(dir, 'profile');
  await mkdir(path.join(profile, 'user'), { recursive: true });
  await writeFile(path.join(profile, 'user', 'registrymodifications.xcu'), NO_MACROS);
  const converted = path.join(dir, 'pdf');
  try {
    await runTool({
      tool: 'soffice',
      args: [
        ...[
          '--headless',
          '--norestore',
          '--nolockcheck',
          '--nodefault',
          `-env:UserInstallation=${pathToFileURL(profile).href}`,
        ],
        ...['--convert-to', 'pdf', '--outdir', converted, document],
      ],
      dir,
      limits: tools,
      purpose: 'convert the office document to PDF',
    });
  } catch (err) {
    if (!(err instanceof ProcessingError)) throw err;
    return { none: `LibreOffice could not convert the document (${err.message}); it has no thumbnail or preview.` };
  }
  // soffice answers 0 for a document it could not load, and writes nothing.
  const [pdf] = await readdir(converted).catch(() => []);
  if (!pdf) return { none: 'LibreOffice could not read the document; it has no thumbnail or preview.' };
  return renderPdfFirstPage(path.join(converted, pdf), dir, tools);
};
