// Tells text formats apart by their content: JSON, XML, SVG, HTML, CSV, TSV and Markdown. It reads the head the
// upload keeps, and a file may be longer than that, so every test accepts a text cut anywhere. The content
// decides; the file's name only chooses among the readings the content leaves open. It runs on every upload:
// a few linear passes over at most 4,100 bytes, nothing parsed into objects.

const PLAIN_TEXT = 'text/plain';
const JSON_TYPE = 'application/json';
const XML = 'application/xml';
const SVG = 'image/svg+xml';
const HTML = 'text/html';
const CSV = 'text/csv';
const TSV = 'text/tab-separated-values';
const MARKDOWN = 'text/markdown';

/** The format each extension names: a tie-breaker only (`.txt`, like any other, names none: plain text). */
const NAMED_TYPES: Partial<Record<string, string>> = {
  csv: CSV,
  tsv: TSV,
  tab: TSV,
  json: JSON_TYPE,
  md: MARKDOWN,
  markdown: MARKDOWN,
  html: HTML,
  htm: HTML,
  xhtml: HTML,
  xml: XML,
  svg: SVG,
};

/** What the content says: the formats it clearly is (usually one), else those it may be. */
interface Readings {
  clear: string[];
  plausible: string[];
}

const NONE = 0;
const PLAUSIBLE = 1;
const CLEAR = 2;
type Likeness = typeof NONE | typeof PLAUSIBLE | typeof CLEAR;

/**
 * The content type of a text that begins with `text` (all of it when `complete`) in a file named `filename`.
 * A clear reading of the content wins, whatever the name; the name picks among several clear readings, or
 * among the plausible ones when none is clear; plain text when the name does not pick.
 */
export function textFormatOf(text: string, complete: boolean, filename: string): string {
  const { clear, plausible } = readingsOf(text, complete);
  const extension = /\.([a-z0-9]{1,10})$/i.exec(filename)?.[1]?.toLowerCase() ?? '';
  const named = NAMED_TYPES[extension];
  const choices = clear.length > 0 ? clear : plausible;
  if (named !== undefined && choices.includes(named)) return named;
  return clear[0] ?? PLAIN_TEXT;
}

function readingsOf(text: string, complete: boolean): Readings {
  const start = skipSpace(text, 0);
  if (start === text.length) return { clear: [], plausible: [] };
  const first = text.charCodeAt(start);
  const plausible: string[] = [];

  const json = jsonLikeness(text, start, complete);
  if (json === CLEAR) return { clear: [JSON_TYPE], plausible };
  if (json === PLAUSIBLE) plausible.push(JSON_TYPE);

  if (first === LESS_THAN) {
    const markup = markupReadings(text, start, complete);
    if (markup && markup.clear.length > 0) return markup;
    if (markup) plausible.push(...markup.plausible);
  }

  const clear: string[] = [];
  const delimited = delimitedReading(text, complete);
  // Lines of JSON objects or arrays have commas in step too: a table does not start with a bracket.
  const bracketed = first === OPEN_BRACE || first === OPEN_BRACKET;
  if (delimited?.likeness === CLEAR && !bracketed) clear.push(...delimited.types);
  else if (delimited) plausible.push(...delimited.types);
  const markdown = markdownLikeness(text);
  // Markdown lists and headings may have commas in step: beside a table, any sign of Markdown lets the name choose.
  if (markdown === CLEAR || (markdown === PLAUSIBLE && clear.length > 0)) clear.push(MARKDOWN);
  else if (markdown === PLAUSIBLE) plausible.push(MARKDOWN);
  return { clear, plausible };
}

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const COLON = 0x3a;
const LESS_THAN = 0x3c;
const GREATER_THAN = 0x3e;
const OPEN_BRACKET = 0x5b;
const BACKSLASH = 0x5c;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;
const PLUS = 0x2b;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const LOWER_E = 0x65;
const SEMICOLON = 0x3b;
const BAR = 0x7c;

const isDigit = (code: number) => code >= 0x30 && code <= 0x39;
const isSpace = (code: number) => code === SPACE || code === LF || code === CR || code === TAB || code === 0x0c;

function skipSpace(text: string, from: number): number {
  let i = from;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

// JSON (RFC 8259): a grammar check that accepts a text cut anywhere, so a 100 MB array is told from its head.

const OBJECT = 1;
const ARRAY = 2;
// What may come next.
const VALUE = 0;
const VALUE_OR_CLOSE = 1;
const KEY = 2;
const KEY_OR_CLOSE = 3;
const AFTER_KEY = 4;
const AFTER_VALUE = 5;
const LITERALS = ['true', 'false', 'null'];

/**
 * CLEAR for an object or array that is valid JSON, or valid as far as a cut head goes; PLAUSIBLE for a valid
 * scalar, or a text that opens like an object or array but breaks (a broken JSON file, or JSON lines);
 * NONE otherwise.
 */
function jsonLikeness(text: string, start: number, complete: boolean): Likeness {
  const first = text.charCodeAt(start);
  const container = first === OPEN_BRACE || first === OPEN_BRACKET;
  const end = jsonValueEnd(text, start, complete);
  if (end === undefined) return container ? PLAUSIBLE : NONE;
  if (skipSpace(text, end) < text.length) return container ? PLAUSIBLE : NONE;
  return container ? CLEAR : PLAUSIBLE;
}

/** Where the JSON value at `start` ends (the text's end when it is cut inside it); undefined when it breaks. */
function jsonValueEnd(text: string, start: number, complete: boolean): number | undefined {
  const open: number[] = [];
  let next = VALUE;
  let i = start;
  for (;;) {
    i = skipSpace(text, i);
    if (i >= text.length) return !complete || (open.length === 0 && next === AFTER_VALUE) ? i : undefined;
    const c = text.charCodeAt(i);
    const container = open.at(-1);
    if (next === AFTER_VALUE) {
      if (container === undefined) return i;
      if (c === COMMA) next = container === OBJECT ? KEY : VALUE;
      else if (c === (container === OBJECT ? CLOSE_BRACE : CLOSE_BRACKET)) open.pop();
      else return undefined;
      i++;
    } else if (next === AFTER_KEY) {
      if (c !== COLON) return undefined;
      next = VALUE;
      i++;
    } else if (next === KEY || next === KEY_OR_CLOSE) {
      if (c === CLOSE_BRACE && next === KEY_OR_CLOSE) {
        open.pop();
        next = AFTER_VALUE;
        i++;
      } else if (c === QUOTE) {
        const after = jsonStringEnd(text, i);
        if (after === undefined) return complete ? undefined : text.length;
        if (after < 0) return undefined;
        next = AFTER_KEY;
        i = after;
      } else return undefined;
    } else if (c === CLOSE_BRACKET && next === VALUE_OR_CLOSE) {
      open.pop();
      next = AFTER_VALUE;
      i++;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      open.push(c === OPEN_BRACE ? OBJECT : ARRAY);
      next = c === OPEN_BRACE ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
      i++;
    } else {
      const after = jsonScalarEnd(text, i, complete);
      if (after === undefined) return undefined;
      next = AFTER_VALUE;
      i = after;
    }
  }
}

/** After the string at `start`: -1 when it breaks, undefined when the text ends inside it. */
function jsonStringEnd(text: string, start: number): number | undefined {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) i++;
    else if (c < SPACE) return -1;
  }
  return undefined;
}

/** After the string, number or literal at `start`: the text's length when a cut text ends inside it. */
function jsonScalarEnd(text: string, start: number, complete: boolean): number | undefined {
  const c = text.charCodeAt(start);
  if (c === QUOTE) {
    const after = jsonStringEnd(text, start);
    if (after === undefined) return complete ? undefined : text.length;
    return after < 0 ? undefined : after;
  }
  if (c === MINUS || isDigit(c)) return jsonNumberEnd(text, start, complete);
  for (const literal of LITERALS) {
    if (text.startsWith(literal, start)) return start + literal.length;
    if (!complete && start + literal.length > text.length && literal.startsWith(text.slice(start))) return text.length;
  }
  return undefined;
}

/** After the number at `start`, as RFC 8259 writes numbers; the text's length when a cut text ends inside it. */
function jsonNumberEnd(text: string, start: number, complete: boolean): number | undefined {
  let i = start;
  const cut = () => (!complete && i >= text.length ? text.length : undefined);
  if (text.charCodeAt(i) === MINUS) i++;
  if (text.charCodeAt(i) === ZERO) i++;
  else if (isDigit(text.charCodeAt(i))) i = skipDigits(text, i);
  else return cut();
  if (text.charCodeAt(i) === DOT) {
    if (!isDigit(text.charCodeAt(++i))) return cut();
    i = skipDigits(text, i);
  }
  if ((text.charCodeAt(i) | 0x20) === LOWER_E) {
    const sign = text.charCodeAt(++i);
    if (sign === PLUS || sign === MINUS) i++;
    if (!isDigit(text.charCodeAt(i))) return cut();
    i = skipDigits(text, i);
  }
  return i;
}

function skipDigits(text: string, from: number): number {
  let i = from;
  while (isDigit(text.charCodeAt(i))) i++;
  return i;
}

// Markup: the prolog (XML declaration, comments, processing instructions, doctype), then the root element.

const SVG_NAMESPACE = 'http://www.w3.org/2000/svg';
/** The tags WHATWG MIME Sniffing (§7.1, "identifying a resource with an unknown MIME type") reads as HTML. */
const HTML_TAGS = new Set('html head script iframe h1 div font table a style title b body br p'.split(' '));
const DOCTYPE_NAME = /<!doctype\s+([^\s>[]+)/iy;
const ROOT_ELEMENT = /<([A-Za-z_][\w.:-]*)/y;
// Each scan stops at the next quote or bracket, so a hostile tag costs one pass, not one per attribute.
const NAMESPACE_DECLARATION = /\sxmlns(?::([\w.-]+))?\s*=\s*(["'])([^"'<>]*)\2/g;

/** The readings of a text that starts with `<`; undefined when what follows is not markup after all. */
function markupReadings(text: string, start: number, complete: boolean): Readings | undefined {
  const declared = text.startsWith('<?xml', start);
  let doctype = '';
  let i = start;
  for (;;) {
    i = skipSpace(text, i);
    if (text.startsWith('<?', i)) i = after(text, '?>', i + 2);
    else if (text.startsWith('<!--', i)) i = after(text, '-->', i + 4);
    else if (text.slice(i, i + 9).toLowerCase() === '<!doctype') {
      DOCTYPE_NAME.lastIndex = i;
      doctype = DOCTYPE_NAME.exec(text)?.[1]?.toLowerCase() ?? '';
      i = endOfTag(text, i + 9) ?? text.length;
    } else break;
  }
  if (doctype === 'html') return { clear: [HTML], plausible: [] };
  ROOT_ELEMENT.lastIndex = i;
  const name = ROOT_ELEMENT.exec(text)?.[1];
  if (name === undefined) return declared ? { clear: [XML], plausible: [] } : undefined;
  const tagEnd = endOfTag(text, ROOT_ELEMENT.lastIndex);
  const tag = text.slice(i, tagEnd ?? text.length);
  const prefix = name.includes(':') ? name.slice(0, name.indexOf(':')) : '';
  const local = name.slice(prefix.length > 0 ? prefix.length + 1 : 0);
  if (local.toLowerCase() === 'html') return { clear: [HTML], plausible: [] };
  if (local === 'svg' && namespaceOf(tag, prefix) === SVG_NAMESPACE) return { clear: [SVG], plausible: [] };
  if (!declared && HTML_TAGS.has(name.toLowerCase())) {
    // Markdown may open with HTML (a centred logo): then the name may say which it is.
    const markdown = markdownLikeness(text) !== NONE;
    return { clear: markdown ? [HTML, MARKDOWN] : [HTML], plausible: [] };
  }
  // Without its namespace an <svg> is only XML, unless the name says SVG.
  const readings = local === 'svg' ? [XML, SVG] : [XML];
  const rest = tagEnd === undefined ? '' : text.slice(tagEnd).trimEnd();
  const wellFormed =
    tagEnd !== undefined && (!complete || (tag.endsWith('/>') ? rest === '' : rest.endsWith(`</${name}>`)));
  return declared || wellFormed ? { clear: readings, plausible: [] } : { clear: [], plausible: readings };
}

/** Just after the first `marker` from `from`; the text's length when there is none. */
function after(text: string, marker: string, from: number): number {
  const at = text.indexOf(marker, from);
  return at < 0 ? text.length : at + marker.length;
}

/** Just after the `>` that ends the tag (or doctype) going on at `from`, past quoted values and a doctype's `[...]`. */
function endOfTag(text: string, from: number): number | undefined {
  let quote = 0;
  let subset = false;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote !== 0) {
      if (c === quote) quote = 0;
    } else if (c === QUOTE || c === 0x27) quote = c;
    else if (c === OPEN_BRACKET) subset = true;
    else if (c === CLOSE_BRACKET) subset = false;
    else if (c === GREATER_THAN && !subset) return i + 1;
  }
  return undefined;
}

/** The namespace a start tag binds to `prefix` ('' for the default namespace). */
function namespaceOf(tag: string, prefix: string): string | undefined {
  for (const [, declaredPrefix = '', , namespace] of tag.matchAll(NAMESPACE_DECLARATION)) {
    if (declaredPrefix === prefix) return namespace;
  }
  return undefined;
}

// CSV and TSV (RFC 4180): records with the same number of fields, quoted fields keeping delimiters and line breaks.

/** Comma, tab, semicolon and bar, as the worker's CSV reader guesses them. */
const DELIMITERS = [COMMA, TAB, SEMICOLON, BAR];
/** A tab-separated file is a CSV too: a `.csv` name may keep it one. */
const DELIMITED_TYPES = [[CSV], [TSV, CSV], [CSV], [CSV]];
/** Records compared: enough to see a table's shape, few enough to stay cheap. */
const SAMPLE_RECORDS = 32;
/** More spaces than this per field, on average, read as prose with commas rather than as a table. */
const PROSE_SPACES_PER_FIELD = 3;
/** Share of records that must have the first record's field count for a text to be plausibly a table. */
const PLAUSIBLE_AGREEMENT = 0.8;
/** Records that may disagree with the first in a sample that is plausibly a table. */
const MOST_DISAGREEING = Math.floor((1 - PLAUSIBLE_AGREEMENT) * SAMPLE_RECORDS);

/**
 * CLEAR for records (two or more) that all have the first record's field count, at least two, for one
 * delimiter, unless their first or last field is always empty (a Markdown table, code ending in `;`) or they
 * read as prose; PLAUSIBLE for a single record with a delimiter, or mostly agreeing records.
 */
function delimitedReading(text: string, complete: boolean): { types: string[]; likeness: Likeness } | undefined {
  const counts = [0, 0, 0, 0];
  const firstCounts = [0, 0, 0, 0];
  const agreeing = [0, 0, 0, 0];
  let alwaysLeading = 0b1111;
  let alwaysTrailing = 0b1111;
  let records = 0;
  let spaces = 0;
  let inRecord = false;
  let inQuotes = false;
  let fieldStart = true;
  let firstCode = 0;
  let lastCode = 0;
  const endRecord = () => {
    records++;
    for (let d = 0; d < DELIMITERS.length; d++) {
      if (records === 1) firstCounts[d] = counts[d]!;
      else if (counts[d] === firstCounts[d]) agreeing[d]!++;
      counts[d] = 0;
    }
    alwaysLeading &= delimiterBit(firstCode);
    alwaysTrailing &= delimiterBit(lastCode);
    inRecord = false;
    fieldStart = true;
  };
  let i = 0;
  while (i < text.length && records < SAMPLE_RECORDS) {
    const c = text.charCodeAt(i++);
    if (inQuotes) {
      if (c !== QUOTE) continue;
      if (text.charCodeAt(i) === QUOTE) i++;
      else inQuotes = false;
      lastCode = c;
      continue;
    }
    if (c === LF || c === CR) {
      if (!inRecord) continue;
      endRecord();
      // Stop as soon as no delimiter can make a table any more (prose is told within a few lines).
      if (!firstCounts.some((count, d) => count > 0 && records - 1 - agreeing[d]! <= MOST_DISAGREEING))
        return undefined;
      continue;
    }
    if (!inRecord) {
      inRecord = true;
      firstCode = c;
    }
    lastCode = c;
    const d = delimiterIndex(c);
    if (d >= 0) {
      counts[d]!++;
      fieldStart = true;
    } else if (c === QUOTE && fieldStart) {
      inQuotes = true;
      fieldStart = false;
    } else if (c === SPACE) spaces++;
    else fieldStart = false;
  }
  // A record cut by the head's end is left out, unless it is all there is.
  if (inRecord && (complete || records === 0)) endRecord();

  let best = -1;
  for (let d = 0; d < DELIMITERS.length; d++) {
    if (firstCounts[d]! > 0 && agreeing[d] === records - 1 && (best < 0 || firstCounts[d]! > firstCounts[best]!))
      best = d;
  }
  if (best >= 0) {
    const bit = 1 << best;
    const fields = records * (firstCounts[best]! + 1);
    const table =
      records >= 2 &&
      (alwaysLeading & bit) === 0 &&
      (alwaysTrailing & bit) === 0 &&
      spaces <= PROSE_SPACES_PER_FIELD * fields;
    return { types: DELIMITED_TYPES[best]!, likeness: table ? CLEAR : PLAUSIBLE };
  }
  const mostly = DELIMITERS.findIndex(
    (_, d) => firstCounts[d]! > 0 && agreeing[d]! + 1 >= PLAUSIBLE_AGREEMENT * records,
  );
  return mostly < 0 ? undefined : { types: DELIMITED_TYPES[mostly]!, likeness: PLAUSIBLE };
}

/** The delimiter's index in DELIMITERS, -1 for any other character (a switch: this runs on every character). */
function delimiterIndex(code: number): number {
  switch (code) {
    case COMMA:
      return 0;
    case TAB:
      return 1;
    case SEMICOLON:
      return 2;
    case BAR:
      return 3;
    default:
      return -1;
  }
}

function delimiterBit(code: number): number {
  const d = delimiterIndex(code);
  return d < 0 ? 0 : 1 << d;
}

// Markdown: a heuristic over line starts and inline syntax; plain text when unsure.

const HEADING = 1;
const LIST = 2;
const QUOTATION = 4;
const EMPHASIS = 8;
const FENCE = 16;
const SETEXT = 32;
const TABLE = 64;
const LINK = 128;
/** Signs that plain text seldom shows by chance (a `# comment` or `- item` it often does). */
const STRONG_SIGNS = FENCE | SETEXT | TABLE | LINK;
const TABLE_DELIMITER_ROW = /^\|? *:?-{3,}:? *(\| *:?-{3,}:? *)+\|? *\r?$/;
const LINK_DEFINITION = /^\[[^\]\n]+\]:[ \t]+\S/;
// Inline syntax, each tried where its first characters are (a regex scanning the text for all of them is slower).
// No pattern runs past the next opening of its own, and a few dozen openings that lead nowhere are enough to give up.
const INLINE_TRIES = 32;
const INLINE_SIGNS: Array<[opening: string, syntax: RegExp, sign: number]> = [
  ['](', /\]\([^)\]\s]+\)/y, LINK],
  ['`', /`[^`\n]+`/y, EMPHASIS],
  ['**', /\*\*[^*\s][^*\n]*\*\*/y, EMPHASIS],
  ['__', /__[^_\s][^_\n]*__/y, EMPHASIS],
];

/** CLEAR with two kinds of Markdown syntax of which one is strong, or three kinds; PLAUSIBLE with one. */
function markdownLikeness(text: string): Likeness {
  let signs = 0;
  let previousBlank = true;
  for (let start = 0; start < text.length;) {
    const lineEnd = text.indexOf('\n', start);
    const end = lineEnd < 0 ? text.length : lineEnd;
    let i = start;
    while (i < end && (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB)) i++;
    const blank = i >= end || (i === end - 1 && text.charCodeAt(i) === CR);
    if (!blank) signs |= lineSign(text, i, end, previousBlank);
    previousBlank = blank;
    start = end + 1;
  }
  for (const [opening, syntax, sign] of INLINE_SIGNS) {
    if (isClearMarkdown(signs)) break;
    if ((signs & sign) !== 0) continue;
    let tries = 0;
    for (let at = text.indexOf(opening); at >= 0 && tries < INLINE_TRIES; at = text.indexOf(opening, at + 1)) {
      tries++;
      syntax.lastIndex = at;
      if (syntax.test(text)) {
        signs |= sign;
        break;
      }
    }
  }
  return isClearMarkdown(signs) ? CLEAR : signs !== 0 ? PLAUSIBLE : NONE;
}

function isClearMarkdown(signs: number): boolean {
  let kinds = 0;
  for (let bits = signs; bits !== 0; bits &= bits - 1) kinds++;
  return kinds >= 3 || (kinds >= 2 && (signs & STRONG_SIGNS) !== 0);
}

/** The sign of the non-blank line whose text starts at `i` (after its indentation) and ends at `end`. */
function lineSign(text: string, i: number, end: number, afterBlank: boolean): number {
  const c = text[i];
  const spaceAt = (at: number) => text[at] === ' ' || text[at] === '\t';
  const repeated = (at: number) => {
    let j = at;
    while (j < end && text[j] === c) j++;
    return j - at;
  };
  const onlyRepeats = () => repeated(i) >= 3 && skipSpace(text, i + repeated(i)) >= end;
  switch (c) {
    case '#': {
      const level = repeated(i);
      return level <= 6 && spaceAt(i + level) && skipSpace(text, i + level) < end ? HEADING : 0;
    }
    case '`':
    case '~':
      return repeated(i) >= 3 ? FENCE : 0;
    case '=':
      return !afterBlank && onlyRepeats() ? SETEXT : 0;
    case '-':
      if (!afterBlank && onlyRepeats()) return SETEXT;
      if (spaceAt(i + 1)) return LIST;
      return TABLE_DELIMITER_ROW.test(text.slice(i, end)) ? TABLE : 0;
    case '*':
    case '+':
      return spaceAt(i + 1) ? LIST : 0;
    case '>':
      return QUOTATION;
    case '[':
      return LINK_DEFINITION.test(text.slice(i, end)) ? LINK : 0;
    case '|':
    case ':':
      return TABLE_DELIMITER_ROW.test(text.slice(i, end)) ? TABLE : 0;
    default: {
      let j = i;
      while (j - i < 10 && isDigit(text.charCodeAt(j))) j++;
      return j > i && (text[j] === '.' || text[j] === ')') && spaceAt(j + 1) ? LIST : 0;
    }
  }
}
