// A streaming JSON validator (RFC 8259): fed the text chunk by chunk, it keeps a stack of open
// containers and counts the keys or items of the top-level value, so a 100 MB document is checked
// without ever being held in memory or parsed into objects.
import { KEPT_NAME_CHARS, LISTED_KEYS, type JsonSummary } from '../../core/results/text.js';

// Open containers, one byte each: a document of ten million '[' must not cost ten million array slots.
const OBJECT = 1;
const ARRAY = 2;
type Container = typeof OBJECT | typeof ARRAY;
type State =
  | 'value' // a value must come (start, after ':' or after ',' in an array)
  | 'value_or_close' // just after '['
  | 'key_or_close' // just after '{'
  | 'key' // after ',' in an object
  | 'colon'
  | 'after_value'
  | 'string'
  | 'escape'
  | 'unicode'
  | 'number'
  | 'literal'
  | 'failed';

// Number grammar positions; the ones marked in ENDS_NUMBER may end the number.
type NumberPart = 'minus' | 'zero' | 'int' | 'dot' | 'frac' | 'e' | 'e_sign' | 'exp';
const ENDS_NUMBER = new Set<NumberPart>(['zero', 'int', 'frac', 'exp']);

// eslint-disable-next-line no-control-regex -- control characters must be escaped inside JSON strings
const STRING_SPECIAL = /["\\\u0000-\u001f]/g;
const ESCAPED: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
const isDigit = (c: string) => c >= '0' && c <= '9';
const isWhitespace = (c: string) => c === ' ' || c === '\n' || c === '\r' || c === '\t';
const LITERALS: Record<string, string> = { t: 'true', f: 'false', n: 'null' };
const LITERAL_TYPES: Record<string, JsonSummary['top_level']> = { t: 'boolean', f: 'boolean', n: 'null' };

export class JsonScanner {
  private state: State = 'value';
  private stack = new Uint8Array(64);
  private depth = 0;
  private stringIsKey = false;
  private hexLeft = 0;
  private numberPart: NumberPart = 'int';
  private literal = '';
  private literalAt = 0;
  private topLevel: JsonSummary['top_level'] = null;
  private members = 0;
  private line = 1;
  private column = 0;
  private error: string | null = null;
  /** The first LISTED_KEYS keys of the top-level object, each cut to KEPT_NAME_CHARS code units. */
  private readonly keyNames: string[] = [];
  /** The top-level key being read, unescaped; null when it is not kept. */
  private key: string | null = null;
  private hex = 0;

  feed(text: string): void {
    for (let i = 0; i < text.length && this.state !== 'failed'; i++) {
      if (this.state === 'string') {
        // Most of a document is string content: jump to the next quote, backslash or control character.
        STRING_SPECIAL.lastIndex = i;
        const next = STRING_SPECIAL.test(text) ? STRING_SPECIAL.lastIndex - 1 : text.length;
        if (this.key !== null) this.keep(text.slice(i, Math.min(next, i + KEPT_NAME_CHARS)));
        this.column += next - i;
        i = next;
        if (i === text.length) break;
      }
      const c = text[i]!;
      if (c === '\n') {
        this.line++;
        this.column = 0;
      } else {
        this.column++;
      }
      this.step(c);
    }
  }

  end(): JsonSummary {
    if (this.state === 'number' && ENDS_NUMBER.has(this.numberPart)) this.state = 'after_value';
    if (this.state !== 'failed' && !(this.state === 'after_value' && this.depth === 0)) {
      this.fail(this.topLevel === null ? 'there is no JSON value' : 'the text ends inside a value');
    }
    const valid = this.error === null;
    return {
      valid,
      top_level: valid ? this.topLevel : null,
      keys: valid && this.topLevel === 'object' ? this.members : null,
      key_names: valid && this.topLevel === 'object' ? this.keyNames : null,
      items: valid && this.topLevel === 'array' ? this.members : null,
      error: this.error,
    };
  }

  private step(c: string): void {
    switch (this.state) {
      case 'string':
        if (c === '"') return this.endValue();
        if (c === '\\') this.state = 'escape';
        else if (c < ' ') this.fail('a control character inside a string');
        return;
      case 'escape':
        if (c === 'u') {
          this.state = 'unicode';
          this.hexLeft = 4;
          this.hex = 0;
        } else if (ESCAPED[c] !== undefined) {
          this.keep(ESCAPED[c]);
          this.state = 'string';
        } else this.fail(`an invalid escape "\\${c}"`);
        return;
      case 'unicode':
        if (!/[0-9a-fA-F]/.test(c)) return this.fail('an invalid \\u escape');
        this.hex = this.hex * 16 + parseInt(c, 16);
        if (--this.hexLeft === 0) {
          // A surrogate pair arrives as two escapes, one code unit each: kept side by side, they make the character.
          this.keep(String.fromCharCode(this.hex));
          this.state = 'string';
        }
        return;
      case 'number':
        if (this.continueNumber(c)) return;
        if (!ENDS_NUMBER.has(this.numberPart)) return this.fail(`an unfinished number before "${c}"`);
        this.state = 'after_value';
        return this.step(c);
      case 'literal':
        if (c !== this.literal[this.literalAt]) return this.fail(`an unexpected "${c}" in ${this.literal}`);
        if (++this.literalAt === this.literal.length) this.endValue();
        return;
      default:
        if (isWhitespace(c)) return;
        return this.structural(c);
    }
  }

  private structural(c: string): void {
    const top = this.depth > 0 ? this.stack[this.depth - 1] : undefined;
    switch (this.state) {
      case 'value_or_close':
        if (c === ']') return this.close(ARRAY);
        return this.startValue(c);
      case 'value':
        return this.startValue(c);
      case 'key_or_close':
        if (c === '}') return this.close(OBJECT);
        return this.startKey(c);
      case 'key':
        return this.startKey(c);
      case 'colon':
        if (c !== ':') return this.fail(`"${c}" where ":" should follow a key`);
        this.state = 'value';
        return;
      case 'after_value':
        if (top === undefined) return this.fail(`"${c}" after the end of the value`);
        if (c === ',') {
          this.state = top === OBJECT ? 'key' : 'value';
          return;
        }
        if (c === '}' || c === ']') return this.close(c === '}' ? OBJECT : ARRAY);
        return this.fail(`"${c}" where "," or "${top === OBJECT ? '}' : ']'}" should come`);
    }
  }

  private startKey(c: string): void {
    if (c !== '"') return this.fail(`"${c}" where a key (a string) should come`);
    if (this.depth === 1) {
      this.members++;
      if (this.keyNames.length < LISTED_KEYS) this.key = '';
    }
    this.stringIsKey = true;
    this.state = 'string';
  }

  private startValue(c: string): void {
    const depth = this.depth;
    if (depth === 1 && this.stack[0] === ARRAY) this.members++;
    if (c === '{' || c === '[') {
      if (depth === 0) this.topLevel = c === '{' ? 'object' : 'array';
      this.push(c === '{' ? OBJECT : ARRAY);
      this.state = c === '{' ? 'key_or_close' : 'value_or_close';
    } else if (c === '"') {
      if (depth === 0) this.topLevel = 'string';
      this.stringIsKey = false;
      this.state = 'string';
    } else if (c === '-' || isDigit(c)) {
      if (depth === 0) this.topLevel = 'number';
      this.state = 'number';
      this.numberPart = c === '-' ? 'minus' : c === '0' ? 'zero' : 'int';
    } else if (LITERALS[c]) {
      if (depth === 0) this.topLevel = LITERAL_TYPES[c]!;
      this.literal = LITERALS[c]!;
      this.literalAt = 1;
      this.state = 'literal';
    } else {
      this.fail(`"${c}" where a value should come`);
    }
  }

  /** Advances the number grammar; false when `c` cannot continue the number. */
  private continueNumber(c: string): boolean {
    const digit = isDigit(c);
    const exponent = c === 'e' || c === 'E';
    let next: NumberPart | undefined;
    switch (this.numberPart) {
      case 'minus':
        next = digit ? (c === '0' ? 'zero' : 'int') : undefined;
        break;
      case 'zero':
        next = c === '.' ? 'dot' : exponent ? 'e' : undefined;
        break;
      case 'int':
        next = digit ? 'int' : c === '.' ? 'dot' : exponent ? 'e' : undefined;
        break;
      case 'dot':
      case 'frac':
        next = digit ? 'frac' : this.numberPart === 'frac' && exponent ? 'e' : undefined;
        break;
      case 'e':
        next = digit ? 'exp' : c === '+' || c === '-' ? 'e_sign' : undefined;
        break;
      case 'e_sign':
      case 'exp':
        next = digit ? 'exp' : undefined;
        break;
    }
    if (!next) return false;
    this.numberPart = next;
    return true;
  }

  private endValue(): void {
    if (this.state === 'string' && this.stringIsKey) {
      if (this.key !== null) this.keyNames.push(this.key);
      this.key = null;
      this.stringIsKey = false;
      this.state = 'colon';
      return;
    }
    this.state = 'after_value';
  }

  /** Adds to the key being kept, within KEPT_NAME_CHARS. */
  private keep(text: string): void {
    if (this.key !== null && this.key.length < KEPT_NAME_CHARS)
      this.key += text.slice(0, KEPT_NAME_CHARS - this.key.length);
  }

  private push(container: Container): void {
    if (this.depth === this.stack.length) {
      const grown = new Uint8Array(this.stack.length * 2);
      grown.set(this.stack);
      this.stack = grown;
    }
    this.stack[this.depth++] = container;
  }

  private close(container: Container): void {
    if (this.depth === 0 || this.stack[--this.depth] !== container)
      return this.fail('a bracket that closes nothing open');
    this.state = 'after_value';
  }

  private fail(what: string): void {
    if (this.state === 'failed') return;
    this.error = `Line ${this.line}, column ${this.column}: ${what}.`;
    this.state = 'failed';
  }
}
