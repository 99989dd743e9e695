// Which Office program wrote an OLE2 compound file, from its first kilobytes only (what sniffing has). The sure
// sign is the directory, but writers often put it after the streams (LibreOffice does); the head then usually holds
// the CompObj stream, which names the program by its class id, or the start of the document's main stream. A
// compound file that shows none of them (an installer, an Outlook message) is not taken for a document.

/** What file-type calls every compound file. */
export const OLE2_CONTENT_TYPE = 'application/x-cfb';

const HEADER_BYTES = 512;
const DIRECTORY_ENTRY_BYTES = 128;

const WORD = 'application/msword';
const EXCEL = 'application/vnd.ms-excel';
const POWERPOINT = 'application/vnd.ms-powerpoint';

/** The stream each program keeps its document in, by its name in the directory. */
const MAIN_STREAMS: Readonly<Record<string, string>> = {
  WordDocument: WORD,
  Workbook: EXCEL,
  Book: EXCEL,
  'PowerPoint Document': POWERPOINT,
};

/** A CompObj stream's fixed start (MS-OLEDS 2.3.8: version, byte order, format, reserved), then a class id. */
const COMPOBJ_HEADER = Buffer.from('0100feff030a0000ffffffff', 'hex');

/** Class ids as stored (the first three fields little-endian): Word 6 and 97, Excel 5 and 97, PowerPoint 97. */
const PROGRAM_CLASSES: Readonly<Record<string, string>> = {
  '0009020000000000c000000000000046': WORD,
  '0609020000000000c000000000000046': WORD,
  '1008020000000000c000000000000046': EXCEL,
  '2008020000000000c000000000000046': EXCEL,
  '108d81649b4fcf1186ea00aa00b929e8': POWERPOINT,
};

/**
 * How each program's main stream starts, at the start of a sector: Word's FIB (0xA5EC, Word 97's nFib 0x00C1),
 * Excel's BOF record (type 0x0809, 16 bytes, BIFF8, workbook globals), PowerPoint's DocumentContainer record header.
 */
const STREAM_STARTS: Array<[Buffer, string]> = [
  [Buffer.from('eca5c100', 'hex'), WORD],
  [Buffer.from('0908100000060500', 'hex'), EXCEL],
  [Buffer.from('0f00e803', 'hex'), POWERPOINT],
];

/** Word's, Excel's or PowerPoint's content type when the head shows which; undefined when it does not. */
export function ole2ContentType(head: Buffer): string | undefined {
  if (head.length < HEADER_BYTES) return undefined;
  const sectorShift = head.readUInt16LE(30);
  if (sectorShift !== 9 && sectorShift !== 12) return undefined;
  const sectorSize = 2 ** sectorShift;
  return fromDirectory(head, sectorSize) ?? fromCompObj(head) ?? fromStreamStart(head, sectorSize);
}

/** The first directory sector, when the head holds it: its entries name the main stream. */
function fromDirectory(head: Buffer, sectorSize: number): string | undefined {
  const start = (head.readUInt32LE(48) + 1) * sectorSize;
  const end = Math.min(head.length, start + sectorSize);
  for (let at = start; at + DIRECTORY_ENTRY_BYTES <= end; at += DIRECTORY_ENTRY_BYTES) {
    const nameBytes = Math.min(head.readUInt16LE(at + 64), 64);
    const name = head.toString('utf16le', at, at + Math.max(0, nameBytes - 2));
    if (Object.hasOwn(MAIN_STREAMS, name)) return MAIN_STREAMS[name];
  }
  return undefined;
}

/** A CompObj stream in the head: 28 bytes, header and class id, that text does not hold by chance. */
function fromCompObj(head: Buffer): string | undefined {
  for (let at = head.indexOf(COMPOBJ_HEADER, HEADER_BYTES); at >= 0; at = head.indexOf(COMPOBJ_HEADER, at + 1)) {
    const classId = head.toString('hex', at + COMPOBJ_HEADER.length, at + COMPOBJ_HEADER.length + 16);
    if (Object.hasOwn(PROGRAM_CLASSES, classId)) return PROGRAM_CLASSES[classId];
  }
  return undefined;
}

/** A main stream's first bytes at the start of a sector, where streams start. */
function fromStreamStart(head: Buffer, sectorSize: number): string | undefined {
  for (let at = sectorSize; at < head.length; at += sectorSize) {
    const found = STREAM_STARTS.find(([start]) => head.subarray(at, at + start.length).equals(start));
    if (found) return found[1];
  }
  return undefined;
}
