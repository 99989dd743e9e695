// What a person expects to see in a result (issue 28): header names and top-level keys, EXIF, media tags, AVI and
// the entries of compressed tars. Files are made at test time by real tools and uploaded through the real API.
import { expect } from 'chai';
import type { File } from '../core/fileRecord.js';
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
});
