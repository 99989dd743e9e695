// Part of `npm run build`: writes pdf.js's worker code with the decode budget's patches beside
// dist/worker/processors/pdfDecodeBudget.js, and fails the build when pdfjs-dist changed under them.
import { writeBudgetedPdfjsWorker } from '../worker/processors/pdfDecodeBudget.js';

await writeBudgetedPdfjsWorker();
