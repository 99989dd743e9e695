import { expect } from 'chai';
import type { File } from '../core/fileRecord.js';
import { sql, truncateFiles } from './support/db.js';
import { png } from './support/fixtures.js';
import { expectProblem } from './support/problems.js';
import { startService, uploadFile, waitForStatus, type TestService } from './support/service.js';
import { hasBlob, overwriteBlob, removeVariant } from './support/stores.js';

interface Page {
  results: File[];
  next: string | null;
}

const getJson = async <T>(url: string): Promise<T> => {
  const response = await fetch(url);
  expect(response.status, url).to.equal(200);
  return (await response.json()) as T;
};

describe('the File resource', () => {
  let service: TestService;
  before(async () => {
    service = await startService();
  });
  after(() => service.close());

  describe('GET /files/', () => {
    const uploaded: File[] = [];
    before(async () => {
      await truncateFiles();
      for (let i = 0; i < 7; i++) {
        const content = i % 2 ? `text number ${i}` : png(1, 1, i);
        uploaded.push(await uploadFile(service.url, { name: `f${i}`, content }));
      }
      for (const file of uploaded) await waitForStatus(service.url, file.id);
    });

    it('lists every file newest first, with its status', async () => {
      const page = await getJson<Page>(`${service.url}/files/`);
      expect(page.results.map((f) => f.id)).to.deep.equal(uploaded.map((f) => f.id).reverse());
      expect(page.results.every((f) => f.processed && f.status === 'processed')).to.equal(true);
      expect(page.next).to.equal(null);
    });

    it('answers the same without the trailing slash', async () => {
      const page = await getJson<Page>(`${service.url}/files`);
      expect(page.results).to.have.length(7);
    });

    it('walks pages with an opaque cursor, never repeating or skipping a file', async () => {
      const seen: string[] = [];
      let next: string | null = `${service.url}/files/?limit=3`;
      let pages = 0;
      while (next) {
        const page: Page = await getJson<Page>(next);
        expect(page.results.length).to.be.at.most(3);
        seen.push(...page.results.map((f) => f.id));
        next = page.next;
        pages++;
      }
      expect(pages).to.equal(3);
      expect(seen).to.deep.equal(uploaded.map((f) => f.id).reverse());
    });

    it('keeps the filters and limit in the next link', async () => {
      const page = await getJson<Page>(`${service.url}/files/?limit=2&kind=text&processed=true`);
      expect(page.results.map((f) => f.kind)).to.deep.equal(['text', 'text']);
      const next = new URL(page.next!);
      expect(next.searchParams.get('kind')).to.equal('text');
      expect(next.searchParams.get('processed')).to.equal('true');
      expect(next.searchParams.get('limit')).to.equal('2');
      const rest = await getJson<Page>(page.next!);
      expect(rest.results.map((f) => f.name)).to.deep.equal(['f1']);
      expect(rest.next).to.equal(null);
    });

    it('filters by status, processed and kind', async () => {
      await sql("UPDATE files SET status = 'failed' WHERE id = $1", [uploaded[0]!.id]);
      try {
        expect((await getJson<Page>(`${service.url}/files/?status=failed`)).results.map((f) => f.id)).to.deep.equal([
          uploaded[0]!.id,
        ]);
        expect((await getJson<Page>(`${service.url}/files/?processed=false`)).results.map((f) => f.id)).to.deep.equal([
          uploaded[0]!.id,
        ]);
        expect((await getJson<Page>(`${service.url}/files/?processed=true`)).results).to.have.length(6);
        expect((await getJson<Page>(`${service.url}/files/?kind=image`)).results).to.have.length(4);
        expect((await getJson<Page>(`${service.url}/files/?kind=image&status=processed`)).results).to.have.length(3);
      } finally {
        await sql("UPDATE files SET status = 'processed' WHERE id = $1", [uploaded[0]!.id]);
      }
    });

    it('filters by error_code and uploaded_before, and keeps them in the next link', async () => {
      const failing = uploaded.slice(0, 3).map((f) => f.id);
      await sql(
        `UPDATE files SET status = 'failed', error = jsonb_build_object('code', c.code, 'message', 'It broke.')
         FROM unnest($1::uuid[], $2::text[]) AS c(id, code) WHERE files.id = c.id`,
        [failing, ['blob_missing', 'blob_missing', 'processing_failed']],
      );
      try {
        const ids = async (url: string) => (await getJson<Page>(url)).results.map((f) => f.id);
        expect(await ids(`${service.url}/files/?error_code=blob_missing`)).to.deep.equal([failing[1], failing[0]]);
        expect(await ids(`${service.url}/files/?error_code=processing_failed&status=failed`)).to.deep.equal([
          failing[2],
        ]);
        expect(await ids(`${service.url}/files/?error_code=blob_missing&status=processed`)).to.deep.equal([]);
        const byCode = await getJson<Page>(`${service.url}/files/?error_code=blob_missing&limit=1`);
        expect(new URL(byCode.next!).searchParams.get('error_code')).to.equal('blob_missing');
        expect(await ids(byCode.next!)).to.deep.equal([failing[0]]);

        const bound = uploaded[3]!.uploaded_at;
        const olderThan = (instant: number) =>
          uploaded
            .filter((f) => Date.parse(f.uploaded_at) < instant)
            .map((f) => f.id)
            .reverse();
        expect(olderThan(Date.parse(bound))).to.have.length.within(1, 3);
        expect(await ids(`${service.url}/files/?uploaded_before=${bound}`)).to.deep.equal(olderThan(Date.parse(bound)));
        // A digit below the millisecond: uploaded[3] itself was uploaded before it.
        const justAfter = bound.replace('Z', '1Z');
        expect(await ids(`${service.url}/files/?uploaded_before=${justAfter}`)).to.deep.equal(
          olderThan(Date.parse(bound) + 1),
        );
        const paged = await getJson<Page>(`${service.url}/files/?uploaded_before=${justAfter}&limit=1`);
        expect(new URL(paged.next!).searchParams.get('uploaded_before')).to.equal(
          new Date(Date.parse(bound) + 1).toISOString(),
        );
        expect(await ids(paged.next!)).to.deep.equal(olderThan(Date.parse(bound) + 1).slice(1, 2));

        const problem = await expectProblem(
          await fetch(`${service.url}/files/?error_code=&uploaded_before=yesterday`),
          400,
          'invalid_query',
        );
        expect(problem.errors!.map((e) => e.field)).to.have.members(['error_code', 'uploaded_before']);
      } finally {
        await sql("UPDATE files SET status = 'processed', error = NULL WHERE id = ANY($1::uuid[])", [failing]);
      }
    });

    it('answers 400 invalid_query with an entry per bad parameter', async () => {
      const forged = Buffer.from('2026-01-01T00:00:00.000Z_not-a-uuid').toString('base64url');
      const problem = await expectProblem(
        await fetch(`${service.url}/files/?limit=0&status=done&processed=yes&kind=movie&cursor=${forged}`),
        400,
        'invalid_query',
      );
      expect(problem.errors!.map((e) => e.field)).to.have.members(['limit', 'status', 'processed', 'kind', 'cursor']);
      for (const query of ['limit=1001', 'limit=abc', 'limit=1.5', 'cursor=%%%', 'cursor=abc', 'limit=1&limit=2']) {
        await expectProblem(await fetch(`${service.url}/files/?${query}`), 400, 'invalid_query');
      }
    });

    it('accepts the largest limit', async () => {
      expect((await getJson<Page>(`${service.url}/files/?limit=1000`)).results).to.have.length(7);
    });
  });

  describe('GET /files/{id}/', () => {
    it('answers the File', async () => {
      const file = await uploadFile(service.url, { name: 'one.txt', content: 'one' });
      const got = await getJson<File>(`${service.url}/files/${file.id}/`);
      expect(got.id).to.equal(file.id);
      expect((await getJson<File>(`${service.url}/files/${file.id}`)).id).to.equal(file.id);
    });

    it('takes an id in any case on every {id} route, as UUIDs are case-insensitive', async () => {
      const image = await waitForStatus(
        service.url,
        (await uploadFile(service.url, { name: 'upper.png', content: png(32, 32, 9) })).id,
      );
      const upper = `${service.url}/files/${image.id.toUpperCase()}`;
      expect((await getJson<File>(`${upper}/`)).id).to.equal(image.id);
      const content = await fetch(`${upper}/content`);
      expect([content.status, content.headers.get('etag')]).to.deep.equal([200, `"${image.sha256}"`]);
      expect((await fetch(`${upper}/content`, { method: 'HEAD' })).status).to.equal(200);
      expect((await fetch(`${upper}/thumbnail`)).status).to.equal(200);
      const requeued = await fetch(`${upper}/reprocess`, { method: 'POST' });
      expect([requeued.status, ((await requeued.json()) as File).id]).to.deep.equal([202, image.id]);
      await waitForStatus(service.url, image.id);
      expect((await fetch(`${upper}/`, { method: 'DELETE' })).status).to.equal(204);
      expect(await hasBlob(service.storage, image.id), 'the bytes, named by the canonical id').to.equal(false);
      expect(await hasBlob(service.storage, image.id, 'thumbnail')).to.equal(false);
    });

    it('answers 404 not_found for unknown and malformed ids, never 500', async () => {
      for (const id of [
        '01890000-0000-7000-8000-000000000000',
        'nope',
        '1 OR 1=1',
        '%00',
        'ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ',
      ]) {
        await expectProblem(await fetch(`${service.url}/files/${id}/`), 404, 'not_found');
      }
    });
  });

  describe('GET /files/{id}/content', () => {
    const content = 'The quick brown fox jumps over the lazy dog.\n';
    let file: File;
    before(async () => {
      file = await uploadFile(service.url, {
        name: 'résumé "final".html',
        content: `<script>alert(1)</script>${content}`,
      });
    });

    it('streams the bytes as an attachment that browsers neither sniff nor render', async () => {
      const response = await fetch(file.file);
      expect(response.status).to.equal(200);
      expect(await response.text()).to.equal(`<script>alert(1)</script>${content}`);
      expect(response.headers.get('content-disposition')).to.equal(
        `attachment; filename="r_sum_ \\"final\\".html"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.html`,
      );
      expect(response.headers.get('x-content-type-options')).to.equal('nosniff');
      expect(response.headers.get('content-security-policy')).to.equal('sandbox');
      expect(response.headers.get('content-type')).to.equal('text/html; charset=utf-8');
      expect(response.headers.get('etag')).to.equal(`"${file.sha256}"`);
      expect(response.headers.get('accept-ranges')).to.equal('bytes');
    });

    it('answers 304 when If-None-Match has the ETag', async () => {
      for (const header of [`"${file.sha256}"`, `"other", W/"${file.sha256}"`, '*']) {
        const response = await fetch(file.file, { headers: { 'If-None-Match': header } });
        expect(response.status, header).to.equal(304);
        expect(await response.text()).to.equal('');
      }
      expect((await fetch(file.file, { headers: { 'If-None-Match': '"other"' } })).status).to.equal(200);
    });

    it('answers 206 with the bytes of a single range', async () => {
      const full = `<script>alert(1)</script>${content}`;
      const cases: Array<[string, string, string]> = [
        ['bytes=0-7', full.slice(0, 8), `bytes 0-7/${full.length}`],
        ['bytes=8-', full.slice(8), `bytes 8-${full.length - 1}/${full.length}`],
        ['bytes=-5', full.slice(-5), `bytes ${full.length - 5}-${full.length - 1}/${full.length}`],
        ['bytes=10-100000', full.slice(10), `bytes 10-${full.length - 1}/${full.length}`],
        // A suffix longer than the file selects all of it (RFC 9110 §14.1.3), and whitespace may open the list.
        ['bytes=-100000', full, `bytes 0-${full.length - 1}/${full.length}`],
        ['bytes= 0-7', full.slice(0, 8), `bytes 0-7/${full.length}`],
      ];
      for (const [range, body, contentRange] of cases) {
        const response = await fetch(file.file, { headers: { Range: range } });
        expect(response.status, range).to.equal(206);
        expect(response.headers.get('content-range')).to.equal(contentRange);
        expect(await response.text()).to.equal(body);
      }
    });

    it('sends the whole file for ranges it does not serve, and when If-Range does not match', async () => {
      const variants: Array<Record<string, string>> = [
        { Range: 'bytes=0-1,4-5' },
        { Range: 'items=0-1' },
        { Range: 'bytes=5-2' },
        { Range: 'bytes=0-1', 'If-Range': '"stale"' },
      ];
      for (const headers of variants) {
        const response = await fetch(file.file, { headers });
        expect(response.status, JSON.stringify(headers)).to.equal(200);
        expect((await response.text()).length).to.equal(file.size);
      }
    });

    it('answers 416 for a range past the end', async () => {
      const response = await fetch(file.file, { headers: { Range: `bytes=${file.size}-` } });
      await expectProblem(response, 416, 'range_not_satisfiable');
      expect(response.headers.get('content-range')).to.equal(`bytes */${file.size}`);
      expect(response.headers.get('content-disposition')).to.equal(null);
    });

    it('answers HEAD with the headers and no body', async () => {
      const response = await fetch(file.file, { method: 'HEAD' });
      expect(response.status).to.equal(200);
      expect(response.headers.get('content-length')).to.equal(String(file.size));
      expect(await response.text()).to.equal('');
    });

    it('answers 404 when the id is unknown or the bytes are gone', async () => {
      await expectProblem(
        await fetch(`${service.url}/files/01890000-0000-7000-8000-000000000000/content`),
        404,
        'not_found',
      );
      const lost = await uploadFile(service.url, { content: 'soon gone' });
      await waitForStatus(service.url, lost.id);
      await service.storage.remove(lost.id);
      const problem = await expectProblem(await fetch(lost.file), 404, 'not_found');
      expect(problem.detail).to.match(/missing from storage/);
    });

    it('answers HEAD 404 not_found, as GET does, when the bytes are gone', async () => {
      const lost = await uploadFile(service.url, { content: 'soon gone' });
      await waitForStatus(service.url, lost.id);
      expect((await fetch(lost.file, { method: 'HEAD' })).status).to.equal(200);
      await service.storage.remove(lost.id);
      for (const headers of [{}, { Range: 'bytes=0-3' }] as Array<Record<string, string>>) {
        const head = await fetch(lost.file, { method: 'HEAD', headers });
        expect(head.status, JSON.stringify(headers)).to.equal(404);
        expect(head.headers.get('content-type')).to.match(/^application\/problem\+json/);
      }
    });
  });

  describe('GET /files/{id}/thumbnail', () => {
    it('answers HEAD 404 not_found, as GET does, when the thumbnail is gone', async () => {
      const image = await waitForStatus(
        service.url,
        (await uploadFile(service.url, { name: 'small.png', content: png(64, 48) })).id,
      );
      expect(image.thumbnail).to.be.a('string');
      expect((await fetch(image.thumbnail!, { method: 'HEAD' })).status).to.equal(200);
      await removeVariant(service.storage, image.id, 'thumbnail');
      expect((await fetch(image.thumbnail!, { method: 'HEAD' })).status).to.equal(404);
      await expectProblem(await fetch(image.thumbnail!), 404, 'not_found');
    });
  });

  describe('DELETE /files/{id}/', () => {
    it('removes the row and the bytes, then answers 404', async () => {
      const file = await uploadFile(service.url, { content: 'to delete' });
      await waitForStatus(service.url, file.id);
      await overwriteBlob(service.storage, file.id, 'a derived file', 'thumbnail');
      expect(await hasBlob(service.storage, file.id)).to.equal(true);

      const response = await fetch(`${service.url}/files/${file.id}/`, { method: 'DELETE' });
      expect(response.status).to.equal(204);
      expect(await hasBlob(service.storage, file.id)).to.equal(false);
      expect(await hasBlob(service.storage, file.id, 'thumbnail')).to.equal(false);
      await expectProblem(await fetch(`${service.url}/files/${file.id}/`), 404, 'not_found');
      await expectProblem(await fetch(`${service.url}/files/${file.id}/`, { method: 'DELETE' }), 404, 'not_found');
      await expectProblem(await fetch(`${service.url}/files/not-an-id/`, { method: 'DELETE' }), 404, 'not_found');
    });

    it('drops a waiting job so no worker picks it up', async () => {
      const idle = await startService({ worker: false });
      try {
        const file = await uploadFile(idle.url, { content: 'never processed' });
        expect((await idle.queue.counts()).waiting).to.equal(1);
        expect((await fetch(`${idle.url}/files/${file.id}`, { method: 'DELETE' })).status).to.equal(204);
        expect((await idle.queue.counts()).waiting).to.equal(0);
      } finally {
        await idle.close();
      }
    });
  });

  describe('POST /files/{id}/reprocess', () => {
    it('queues the file again and the worker processes it again', async () => {
      const file = await uploadFile(service.url, { content: 'again' });
      const first = await waitForStatus(service.url, file.id);
      const response = await fetch(`${service.url}/files/${file.id}/reprocess`, { method: 'POST' });
      expect(response.status).to.equal(202);
      const queued = (await response.json()) as File;
      expect(queued).to.include({ status: 'queued', processed: false, attempts: 0, result: null });
      const second = await waitForStatus(service.url, file.id);
      expect(second).to.include({ status: 'processed', attempts: 1 });
      // The second run records its own finish: a processed_at left from the first would be a stale answer.
      expect(Date.parse(second.processed_at!), 'processed_at of the second run').to.be.above(
        Date.parse(first.processed_at!),
      );
    });

    it('answers 409 file_processing while a worker has it, and 404 for unknown ids', async () => {
      const file = await uploadFile(service.url, { content: 'busy' });
      await waitForStatus(service.url, file.id);
      await sql("UPDATE files SET status = 'processing' WHERE id = $1", [file.id]);
      await expectProblem(
        await fetch(`${service.url}/files/${file.id}/reprocess`, { method: 'POST' }),
        409,
        'file_processing',
      );
      await expectProblem(
        await fetch(`${service.url}/files/01890000-0000-7000-8000-000000000000/reprocess`, { method: 'POST' }),
        404,
        'not_found',
      );
      await expectProblem(await fetch(`${service.url}/files/x/reprocess`, { method: 'POST' }), 404, 'not_found');
    });
  });

  describe('routing', () => {
    it('answers 404 not_found for unknown routes', async () => {
      await expectProblem(await fetch(`${service.url}/nothing/here`), 404, 'not_found');
    });

    it('answers 405 method_not_allowed with Allow', async () => {
      const response = await fetch(`${service.url}/files/`, { method: 'PUT' });
      const problem = await expectProblem(response, 405, 'method_not_allowed');
      expect(response.headers.get('allow')).to.equal('HEAD, GET');
      expect(problem.detail).to.contain('GET');
      const upload = await fetch(`${service.url}/upload`, { method: 'GET' });
      await expectProblem(upload, 405, 'method_not_allowed');
      expect(upload.headers.get('allow')).to.equal('POST');
    });

    it('sets security headers on every response', async () => {
      for (const path of ['/files/', '/nothing', '/openapi.json']) {
        const response = await fetch(`${service.url}${path}`);
        expect(response.headers.get('x-content-type-options'), path).to.equal('nosniff');
        expect(response.headers.get('x-frame-options'), path).to.equal('DENY');
        expect(response.headers.get('referrer-policy'), path).to.equal('no-referrer');
      }
    });
  });
});
