// The benchmark's chart: one bar per figure, as a share of its target (the dashed line), in plain SVG.
import { escapeXml } from '../scale-watch/chart.js';

/** One row of the results table: what was measured, the figure, its ratio, the target and whether it is met. */
export type TableRow = [scenario: string, measured: string, ratio: string, target: string, met: boolean];

export interface Bar {
  label: string;
  value: number;
  target: number;
  /** Whether meeting the target means reaching it (throughput) or staying under it (latency, memory). */
  higherIsBetter: boolean;
}

export function renderChart(title: string, bars: Bar[]): string {
  const width = 760;
  const rowHeight = 44;
  const left = 220;
  const plot = width - left - 80;
  const height = 70 + bars.length * rowHeight;
  const scale = Math.max(2, ...bars.map((bar) => bar.value / bar.target)) * 1.05;
  const x = (share: number) => left + (share / scale) * plot;
  const rows = bars.map((bar, index) => {
    const y = 50 + index * rowHeight;
    const share = bar.value / bar.target;
    const met = bar.higherIsBetter ? share >= 1 : share <= 1;
    return [
      `<text x="${left - 10}" y="${y + 20}" text-anchor="end" font-size="13">${escapeXml(bar.label)}</text>`,
      `<rect x="${left}" y="${y + 6}" width="${Math.max(1, x(share) - left).toFixed(1)}" height="22" fill="${met ? '#2e8b57' : '#c0392b'}"/>`,
      `<text x="${(x(share) + 6).toFixed(1)}" y="${y + 22}" font-size="12">${bar.value} (target ${bar.higherIsBetter ? '≥' : '≤'} ${bar.target})</text>`,
    ].join('');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="26" text-anchor="middle" font-size="16">${escapeXml(title)}</text>`,
    ...rows,
    `<line x1="${x(1).toFixed(1)}" y1="44" x2="${x(1).toFixed(1)}" y2="${height - 10}" stroke="#333" stroke-dasharray="5,4"/>`,
    `<text x="${x(1).toFixed(1)}" y="${height - 1}" text-anchor="middle" font-size="11">target</text>`,
    '</svg>',
    '',
  ].join('\n');
}
