// A self-contained SVG line chart: panels stacked over one time axis, each with its own y scale. No
// dependencies and no fonts to fetch, so it renders the same in a browser, an editor or a CI artifact.

export interface Series {
  name: string;
  color: string;
  /** One value per x; null leaves a gap (the sample could not be read). */
  values: Array<number | null>;
  dashed?: boolean;
}

export interface Panel {
  title: string;
  series: Series[];
}

export interface ChartInput {
  title: string;
  subtitle: string;
  /** Seconds since the start, one per sample. */
  x: number[];
  panels: Panel[];
  /** Time spans (seconds) to shade in every panel, with the legend entry that explains them. */
  bands?: { label: string; spans: Array<[number, number]> };
}

const WIDTH = 960;
const PANEL_HEIGHT = 240;
const MARGIN = { left: 64, right: 180, top: 76, gap: 48, bottom: 44 };

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round upper bound (1, 2 or 5 times a power of ten) and its tick step, so axis labels read well. */
export function niceScale(max: number, ticks = 5): { max: number; step: number } {
  if (!(max > 0)) return { max: 1, step: 0.2 };
  const rough = max / ticks;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough) ?? 10 * power;
  return { max: Math.ceil(max / step) * step, step };
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

/** A time axis in steps a clock reads well (10 s, 1 min, 5 min, ...), about `ticks` of them. */
function timeScale(maxSeconds: number, ticks = 6): { max: number; step: number } {
  const step =
    TIME_STEPS.find((candidate) => candidate * ticks >= maxSeconds) ?? 3600 * Math.ceil(maxSeconds / ticks / 3600);
  return { max: Math.max(step, Math.ceil(maxSeconds / step) * step), step };
}

function formatTick(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function formatSeconds(seconds: number): string {
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  const minutes = `${Math.floor(whole / 60)}m`;
  return whole % 60 === 0 ? minutes : `${minutes}${String(whole % 60).padStart(2, '0')}s`;
}

const fixed = (n: number) => n.toFixed(1);

export function renderChart(input: ChartInput): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const height = MARGIN.top + input.panels.length * (PANEL_HEIGHT + MARGIN.gap) - MARGIN.gap + MARGIN.bottom;
  const xScale = timeScale(Math.max(0, ...input.x));
  const xAt = (seconds: number) => MARGIN.left + (seconds / xScale.max) * plotWidth;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="16" font-weight="bold">${escapeXml(input.title)}</text>`,
    `<text x="${MARGIN.left}" y="40" fill="#555555">${escapeXml(input.subtitle)}</text>`,
  ];
  input.panels.forEach((panel, index) => {
    const top = MARGIN.top + index * (PANEL_HEIGHT + MARGIN.gap);
    const bottom = top + PANEL_HEIGHT;
    const values = panel.series.flatMap((series) => series.values.filter((v): v is number => v !== null));
    const yScale = niceScale(Math.max(0, ...values));
    const yAt = (value: number) => bottom - (value / yScale.max) * PANEL_HEIGHT;
    out.push(`<g class="panel" data-title="${escapeXml(panel.title)}">`);
    out.push(`<text x="${MARGIN.left}" y="${top - 8}" font-weight="bold">${escapeXml(panel.title)}</text>`);
    for (const [start, end] of input.bands?.spans ?? []) {
      out.push(
        `<rect x="${fixed(xAt(start))}" y="${top}" width="${fixed(Math.max(1, xAt(end) - xAt(start)))}" height="${PANEL_HEIGHT}" fill="#fff3c4"/>`,
      );
    }
    for (let tick = 0; tick <= yScale.max + 1e-9; tick += yScale.step) {
      const y = fixed(yAt(tick));
      out.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotWidth}" y2="${y}" stroke="#e5e5e5"/>`);
      out.push(
        `<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#555555">${formatTick(tick)}</text>`,
      );
    }
    for (let tick = 0; tick <= xScale.max + 1e-9; tick += xScale.step) {
      const x = fixed(xAt(tick));
      out.push(`<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 4}" stroke="#555555"/>`);
      out.push(`<text x="${x}" y="${bottom + 16}" text-anchor="middle" fill="#555555">${formatSeconds(tick)}</text>`);
    }
    out.push(
      `<rect x="${MARGIN.left}" y="${top}" width="${plotWidth}" height="${PANEL_HEIGHT}" fill="none" stroke="#999999"/>`,
    );
    panel.series.forEach((series, position) => {
      const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
      for (const points of segments(input.x, series.values)) {
        // A lone sample still shows, as a dot drawn by the round line cap.
        const path =
          points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${fixed(xAt(x))},${fixed(yAt(y))}`).join(' ') +
          (points.length === 1 ? ' h0.1' : '');
        out.push(
          `<path class="series" data-series="${escapeXml(series.name)}" d="${path}" fill="none" stroke="${series.color}" stroke-width="2" stroke-linecap="round"${dash}/>`,
        );
      }
      const legendY = top + 14 + position * 18;
      const legendX = MARGIN.left + plotWidth + 16;
      out.push(
        `<line x1="${legendX}" y1="${legendY}" x2="${legendX + 20}" y2="${legendY}" stroke="${series.color}" stroke-width="2"${dash}/>`,
      );
      out.push(`<text x="${legendX + 26}" y="${legendY}" dominant-baseline="middle">${escapeXml(series.name)}</text>`);
    });
    if (input.bands && input.bands.spans.length > 0) {
      const legendY = top + 14 + panel.series.length * 18;
      const legendX = MARGIN.left + plotWidth + 16;
      out.push(`<rect x="${legendX}" y="${legendY - 6}" width="20" height="12" fill="#fff3c4" stroke="#e0c060"/>`);
      out.push(
        `<text x="${legendX + 26}" y="${legendY}" dominant-baseline="middle">${escapeXml(input.bands.label)}</text>`,
      );
    }
    out.push('</g>');
  });
  out.push(
    `<text x="${MARGIN.left + plotWidth / 2}" y="${height - 8}" text-anchor="middle" fill="#555555">time since the first sample</text>`,
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Runs of consecutive known values, each drawn as its own path, so a missed sample shows as a gap. */
function segments(x: number[], values: Array<number | null>): Array<Array<[number, number]>> {
  const runs: Array<Array<[number, number]>> = [];
  let run: Array<[number, number]> = [];
  values.forEach((value, i) => {
    if (value === null || x[i] === undefined) {
      if (run.length) runs.push(run);
      run = [];
    } else {
      run.push([x[i], value]);
    }
  });
  if (run.length) runs.push(run);
  return runs;
}
