// What a person expects to see in a result (issue 28): header names and top-level keys, EXIF, media tags, AVI and
// the entries of compressed tars. Files are made at test time by real tools and uploaded through the real API.
import { expect } from 'chai';
import sharp from 'sharp';
import type { File } from '../core/fileRecord.js';
import { loopingExif, withApp1 } from './support/richFixtures.js';
import { startService, uploadFile, waitForStatus, type TestService, type UploadPart } from './support/service.js';

/** Uploads a file and waits until the worker has finished with it. */
async function processed(service: TestService, part: UploadPart): Promise<File> {
  const file = await uploadFile(service.url, part);
  return waitForStatus(service.url, file.id, ['processed', 'failed'], 20_000);
}

describe('richer results', function () {
  this.timeout(60_000);
  let service: TestService;
  before(async () => {
    service = await startService();
  });
  after(() => service.close());

  describe('CSV, TSV and JSON', () => {
    it("lists a CSV's and a TSV's header names, unquoted, told from the bytes whatever the name", async () => {
      const csv = await processed(service, {
        name: 'export.txt',
        content: 'id,"full name","city, country"\n1,Ada Lovelace,"London, UK"\n2,Alan Turing,"Wilmslow, UK"\n',
      });
      expect(csv.content_type).to.equal('text/csv; charset=utf-8');
      expect(csv.result!.csv).to.deep.equal({
        delimiter: ',',
        columns: 3,
        header: true,
        rows: 2,
        column_names: ['id', 'full name', 'city, country'],
      });
      const tsv = await processed(service, { name: 'scores', content: 'player\tscore\tlevel\nann\t10\t3\nbo\t7\t2\n' });
      expect(tsv.content_type).to.equal('text/tab-separated-values; charset=utf-8');
      expect((tsv.result!.csv as { column_names: string[] }).column_names).to.deep.equal(['player', 'score', 'level']);
    });

    it('lists the first 100 header names of a wide CSV, and counts them all', async () => {
      const names = Array.from({ length: 150 }, (_, i) => `c${i}`);
      const content = `${names.join(',')}\n${names.map((_, i) => i).join(',')}\n`;
      const done = await processed(service, { name: 'wide.csv', content });
      expect(done.result!.csv).to.deep.include({ columns: 150, header: true, column_names: names.slice(0, 100) });
    });

    it('lists the top-level keys of a JSON object in order, unescaped, and none of the nested ones', async () => {
      const content =
        '{"name": "x", "caf\\u00e9": {"inner": 1}, "tab\\there": [1, {"deep": 2}], "\\ud83d\\ude00": null}';
      const done = await processed(service, { name: 'data.bin', content });
      expect(done.content_type).to.equal('application/json; charset=utf-8');
      expect(done.result!.json).to.deep.equal({
        valid: true,
        top_level: 'object',
        keys: 4,
        key_names: ['name', 'café', 'tab\there', '😀'],
        items: null,
        error: null,
      });
    });

    it('lists the first 100 keys of a large object, and no keys for an array or invalid JSON', async () => {
      const object = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`key${i}`, i]));
      const large = await processed(service, { name: 'large.json', content: JSON.stringify(object) });
      expect(large.result!.json).to.deep.include({
        keys: 250,
        key_names: Array.from({ length: 100 }, (_, i) => `key${i}`),
      });
      const array = await processed(service, { name: 'list.json', content: '[{"a": 1}, {"b": 2}]' });
      expect(array.result!.json).to.deep.include({ top_level: 'array', key_names: null });
      const broken = await processed(service, { name: 'broken.json', content: '{"a": 1, "b": }' });
      expect(broken.result!.json).to.deep.include({ valid: false, key_names: null });
    });
  });

  describe('images', () => {
    const photo = () => sharp({ create: { width: 64, height: 48, channels: 3, background: '#4080c0' } });

    it("reads the camera, the time with its offset and the place from a JPEG's EXIF", async () => {
      const jpeg = await photo()
        .jpeg()
        .withExif({
          IFD0: { Make: 'Canon', Model: 'Canon EOS 5D Mark IV' },
          IFD2: { DateTimeOriginal: '2024:05:17 14:03:22', OffsetTimeOriginal: '+02:00' },
          IFD3: {
            GPSLatitudeRef: 'S',
            GPSLatitude: '33/1 51/1 3144/100',
            GPSLongitudeRef: 'W',
            GPSLongitude: '70/1 40/1 1800/100',
          },
        })
        .toBuffer();
      const done = await processed(service, { name: 'IMG_0001.JPG', content: jpeg });
      expect(done.result).to.deep.include({
        format: 'jpeg',
        make: 'Canon',
        model: 'Canon EOS 5D Mark IV',
        taken_at: '2024-05-17T14:03:22+02:00',
        gps: { lat: -33.8587333, lon: -70.6716667 },
        warnings: [],
      });
    });

    it('gives the local time without an offset when the camera recorded none, and null where EXIF is silent', async () => {
      const local = await photo()
        .webp()
        .withExif({ IFD0: { Make: 'NIKON CORPORATION' }, IFD2: { DateTimeOriginal: '2023:12:31 23:59:59' } })
        .toBuffer();
      const done = await processed(service, { name: 'local.webp', content: local });
      expect(done.result).to.deep.include({
        format: 'webp',
        make: 'NIKON CORPORATION',
        model: null,
        taken_at: '2023-12-31T23:59:59',
        gps: null,
      });
      const bare = await processed(service, { name: 'bare.png', content: await photo().png().toBuffer() });
      expect(bare.result).to.deep.include({ make: null, model: null, taken_at: null, gps: null });
    });

    it('reads only what is in bounds of EXIF directories that loop or point past the end, and processes the image', async () => {
      const jpeg = withApp1(await photo().jpeg().toBuffer(), loopingExif());
      const done = await processed(service, { name: 'loop.jpg', content: jpeg });
      expect(done.status).to.equal('processed');
      expect(done.result).to.deep.include({
        width: 64,
        height: 48,
        make: null,
        model: 'Acme',
        taken_at: null,
        gps: null,
      });
    });
  });
});
