// The few EXIF fields a person looks for (camera, when, where), read from the raw EXIF block sharp hands over. A
// TIFF directory reader of our own, bounded: it visits IFD0 and the two directories IFD0 points to (Exif, GPS) once
// each and never follows a link between directories, so a loop cannot form; every offset is checked against the
// block, entries past MAX_ENTRIES are not read, and strings are cut. Bad bytes give nulls, never an error.

/** A camera's EXIF: every field null when the block does not say, or says something that makes no sense. */
export interface ExifFields {
  make: string | null;
  model: string | null;
  taken_at: string | null;
  gps: { lat: number; lon: number } | null;
}

export const NO_EXIF: ExifFields = { make: null, model: null, taken_at: null, gps: null };

/** Entries read per directory; cameras write a few dozen. */
export const MAX_ENTRIES = 512;
/** Bytes of one string value read. */
const MAX_STRING_BYTES = 256;

const ASCII = 2;
const SHORT = 3;
const LONG = 4;
const RATIONAL = 5;
const UNDEFINED = 7;

const TAG_MAKE = 0x010f;
const TAG_MODEL = 0x0110;
const TAG_EXIF_IFD = 0x8769;
const TAG_GPS_IFD = 0x8825;
const TAG_DATE_TIME_ORIGINAL = 0x9003;
const TAG_OFFSET_TIME_ORIGINAL = 0x9011;
const TAG_LATITUDE_REF = 1;
const TAG_LATITUDE = 2;
const TAG_LONGITUDE_REF = 3;
const TAG_LONGITUDE = 4;

interface Entry {
  type: number;
  count: number;
  /** Where the value is: inside the entry when it fits in 4 bytes, else at the offset the entry gives. */
  at: number;
}

/** A TIFF structure inside `block`, every read checked against its end. */
class Tiff {
  constructor(
    private readonly block: Buffer,
    private readonly little: boolean,
  ) {}

  holds(at: number, bytes: number): boolean {
    return Number.isSafeInteger(at) && at >= 0 && bytes >= 0 && at + bytes <= this.block.length;
  }

  u16(at: number): number {
    return this.little ? this.block.readUInt16LE(at) : this.block.readUInt16BE(at);
  }

  u32(at: number): number {
    return this.little ? this.block.readUInt32LE(at) : this.block.readUInt32BE(at);
  }

  /** The directory at `at` by tag (the first of a repeated tag), or an empty one when it is not in the block. */
  directory(at: number): Map<number, Entry> {
    const entries = new Map<number, Entry>();
    if (!this.holds(at, 2)) return entries;
    const count = Math.min(this.u16(at), MAX_ENTRIES);
    for (let i = 0; i < count; i++) {
      const entry = at + 2 + i * 12;
      if (!this.holds(entry, 12)) break;
      const tag = this.u16(entry);
      const type = this.u16(entry + 2);
      const valueCount = this.u32(entry + 4);
      const size = (TYPE_SIZES[type] ?? 0) * valueCount;
      if (!entries.has(tag))
        entries.set(tag, { type, count: valueCount, at: size <= 4 ? entry + 8 : this.u32(entry + 8) });
    }
    return entries;
  }

  /** A LONG (or SHORT) value: an offset to a sub-directory. */
  offset(entry: Entry | undefined): number | null {
    if (!entry || entry.count !== 1) return null;
    if (entry.type === LONG && this.holds(entry.at, 4)) return this.u32(entry.at);
    if (entry.type === SHORT && this.holds(entry.at, 2)) return this.u16(entry.at);
    return null;
  }

  /** An ASCII value up to its first NUL, at most MAX_STRING_BYTES, trimmed; null when empty or outside the block. */
  text(entry: Entry | undefined): string | null {
    if (!entry || (entry.type !== ASCII && entry.type !== UNDEFINED)) return null;
    const bytes = Math.min(entry.count, MAX_STRING_BYTES);
    if (!this.holds(entry.at, bytes)) return null;
    const raw = this.block.subarray(entry.at, entry.at + bytes);
    const end = raw.indexOf(0);
    // Latin-1 keeps every byte a character: a maker's name is ASCII, and anything else is shown, not guessed at.
    const value = raw.toString('latin1', 0, end < 0 ? raw.length : end).trim();
    return value === '' ? null : value;
  }

  /** Three RATIONALs (degrees, minutes, seconds) as decimal degrees; null when any is missing or divides by zero. */
  degrees(entry: Entry | undefined): number | null {
    if (!entry || entry.type !== RATIONAL || entry.count !== 3 || !this.holds(entry.at, 24)) return null;
    let value = 0;
    for (let i = 0; i < 3; i++) {
      const denominator = this.u32(entry.at + i * 8 + 4);
      if (denominator === 0) return null;
      value += this.u32(entry.at + i * 8) / denominator / 60 ** i;
    }
    return value;
  }
}

const TYPE_SIZES: Partial<Record<number, number>> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8 };

/** The camera, time and place an EXIF block records; `block` may begin with JPEG's `Exif\0\0` or with the TIFF header. */
export function readExif(block: Buffer | undefined): ExifFields {
  if (!block) return NO_EXIF;
  const tiffStart = block.subarray(0, 6).toString('latin1') === 'Exif\0\0' ? 6 : 0;
  const body = block.subarray(tiffStart);
  if (body.length < 8) return NO_EXIF;
  const order = body.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return NO_EXIF;
  const tiff = new Tiff(body, order === 'II');
  if (tiff.u16(2) !== 42) return NO_EXIF;
  const ifd0 = tiff.directory(tiff.u32(4));
  const exifAt = tiff.offset(ifd0.get(TAG_EXIF_IFD));
  const gpsAt = tiff.offset(ifd0.get(TAG_GPS_IFD));
  const exif = exifAt === null ? new Map<number, Entry>() : tiff.directory(exifAt);
  const gps = gpsAt === null ? new Map<number, Entry>() : tiff.directory(gpsAt);
  return {
    make: tiff.text(ifd0.get(TAG_MAKE)),
    model: tiff.text(ifd0.get(TAG_MODEL)),
    taken_at: takenAt(tiff.text(exif.get(TAG_DATE_TIME_ORIGINAL)), tiff.text(exif.get(TAG_OFFSET_TIME_ORIGINAL))),
    gps: position(tiff, gps),
  };
}

const EXIF_DATE_TIME = /^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
const EXIF_OFFSET = /^[+-](\d{2}):(\d{2})$/;

/**
 * `2024-05-17T14:03:22+02:00` from EXIF's `2024:05:17 14:03:22` and `+02:00`; without an offset, the camera's local
 * time as it is (`2024-05-17T14:03:22`). Null for a blank (`0000:00:00 00:00:00`) or impossible date.
 */
export function takenAt(dateTime: string | null, offset: string | null): string | null {
  const parts = dateTime === null ? null : EXIF_DATE_TIME.exec(dateTime);
  if (!parts) return null;
  const [year, month, day, hour, minute, second] = parts.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const calendar = new Date(Date.UTC(year, month - 1, day));
  if (year < 1 || calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  const local = `${parts[1]}-${parts[2]}-${parts[3]}T${parts[4]}:${parts[5]}:${parts[6]}`;
  const zone = offset === null ? null : EXIF_OFFSET.exec(offset);
  return zone && Number(zone[1]) <= 14 && Number(zone[2]) <= 59 ? `${local}${offset}` : local;
}

/** Decimal degrees to 7 places (about a centimetre), south and west negative; null unless both are on the globe. */
function position(tiff: Tiff, gps: Map<number, Entry>): ExifFields['gps'] {
  const lat = tiff.degrees(gps.get(TAG_LATITUDE));
  const lon = tiff.degrees(gps.get(TAG_LONGITUDE));
  const latRef = tiff.text(gps.get(TAG_LATITUDE_REF))?.toUpperCase();
  const lonRef = tiff.text(gps.get(TAG_LONGITUDE_REF))?.toUpperCase();
  if (lat === null || lon === null || (latRef !== 'N' && latRef !== 'S') || (lonRef !== 'E' && lonRef !== 'W'))
    return null;
  if (lat > 90 || lon > 180) return null;
  const round = (degrees: number) => Math.round(degrees * 1e7) / 1e7;
  return { lat: round(latRef === 'S' ? -lat : lat), lon: round(lonRef === 'W' ? -lon : lon) };
}
