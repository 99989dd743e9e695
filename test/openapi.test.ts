import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { ERRORS } from '../api/errors.js';
import { ROUTES, type RouteDoc } from '../api/routes.js';
import { CONTENT_PATH, PREVIEW_PATH, THUMBNAIL_PATH } from '../core/serializer.js';
import { startService, type TestService } from './support/service.js';

type Document = {
  openapi: string;
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, { description: string }> }>>;
  components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
};

describe('GET /openapi.json and /docs', () => {
  let service: TestService;
  let document: Document;
  before(async () => {
    service = await startService({ worker: false });
    document = (await (await fetch(`${service.url}/openapi.json`)).json()) as Document;
  });
  after(() => service.close());

  it('is an OpenAPI 3.1 document with every route of the router', () => {
    expect(document.openapi).to.equal('3.1.0');
    for (const route of ROUTES) {
      expect(document.paths[route.path]?.[route.method]?.operationId, `${route.method} ${route.path}`).to.equal(
        route.operationId,
      );
    }
    expect(Object.keys(document.paths)).to.include.members([
      '/upload/',
      '/files/',
      '/files/{id}/',
      '/files/{id}/content',
      '/files/{id}/reprocess',
    ]);
  });

  it("builds the File's URLs (in the worker's webhook payloads too) from the contract's own paths", () => {
    const paths = new Map((ROUTES as readonly RouteDoc[]).map((route) => [route.operationId, route.path]));
    expect(CONTENT_PATH).to.equal(paths.get('getContent'));
    expect(THUMBNAIL_PATH).to.equal(paths.get('getThumbnail'));
    expect(PREVIEW_PATH).to.equal(paths.get('getPreview'));
  });

  it('documents the File with every field of the contract', () => {
    expect(Object.keys(document.components.schemas.File!.properties!)).to.have.members([
      'id',
      'file',
      'name',
      'size',
      'content_type',
      'kind',
      'sha256',
      'uploaded_at',
      'status',
      'processed',
      'processed_at',
      'attempts',
      'result',
      'error',
      'thumbnail',
      'preview',
      'scan',
    ]);
  });

  it('documents the result of each kind from its processor schema, with the common fields in each', () => {
    const result = document.components.schemas.File!.properties!.result as {
      anyOf: Array<{ $ref?: string; type?: string }>;
      description: string;
    };
    const kinds = ['Image', 'Text', 'Pdf', 'Document', 'Archive', 'Audio', 'Video', 'Other'].map(
      (kind) => `${kind}Result`,
    );
    expect(result.anyOf.map((schema) => schema.$ref ?? schema.type)).to.deep.equal([
      ...kinds.map((name) => `#/components/schemas/${name}`),
      'null',
    ]);
    expect(result.description).to.contain('`image`: ImageResult');
    for (const name of kinds) {
      const schema = document.components.schemas[name] as { required: string[]; properties: Record<string, unknown> };
      expect(schema.required, name).to.include.members(['sha256_verified', 'bytes_read', 'warnings']);
    }
    expect(Object.keys(document.components.schemas.ImageResult!.properties!)).to.include.members([
      'format',
      'width',
      'height',
      'orientation',
      'alpha',
      'pages',
      'thumbnail',
    ]);
    expect(Object.keys(document.components.schemas.ArchiveResult!.properties!)).to.include.members([
      'entries',
      'compressed_bytes',
      'uncompressed_bytes',
      'ratio',
      'names',
      'encrypted_entries',
    ]);
    const documentResult = document.components.schemas.DocumentResult as {
      properties: Record<string, { description?: string; enum?: string[]; anyOf?: Array<{ description?: string }> }>;
    };
    expect(documentResult.properties.format!.enum).to.include.members(['docx', 'xlsm', 'odp', 'doc', 'rtf']);
    for (const field of ['format', 'title', 'author', 'pages', 'sheets', 'slides', 'words', 'macros']) {
      const property = documentResult.properties[field]!;
      expect(property.description ?? property.anyOf?.[0]?.description, field).to.match(/\w/);
    }
    for (const rendering of ['thumbnail', 'preview'])
      expect(document.paths[`/files/{id}/${rendering}`]!.get!.responses['404']!.description).to.contain('not_found');
  });

  it("documents every error code in README.md's table, under the anchor its problem's type links to", async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const [code, { status }] of Object.entries(ERRORS)) {
      const anchor = `errors-${code.replaceAll('_', '-')}`;
      expect(readme, code).to.include(`| ${status} | <a id="${anchor}"></a>\`${code}\` |`);
    }
    // The type a problem carries is the link to that row.
    const problem = (await (await fetch(`${service.url}/nowhere`)).json()) as { type: string };
    expect(problem.type).to.match(/README\.md#errors-not-found$/);
  });

  it('lists the error codes each operation can answer', () => {
    const upload = document.paths['/upload/']!.post!.responses;
    expect(upload['400']!.description)
      .to.contain('file_missing')
      .and.contain('file_empty')
      .and.contain('too_many_files')
      .and.contain('invalid_multipart');
    expect(upload['413']!.description).to.contain('file_too_large');
    expect(upload['415']!.description).to.contain('unsupported_media_type');
    const documented = JSON.stringify(document.paths);
    for (const code of Object.keys(ERRORS).filter((c) => c !== 'method_not_allowed'))
      expect(documented, code).to.contain(code);
  });

  it('serves an interactive page and its assets from our own origin', async () => {
    const page = await fetch(`${service.url}/docs`);
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.equal('text/html; charset=utf-8');
    const html = await page.text();
    expect(html).to.not.match(/https?:\/\//);
    for (const asset of [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)) {
      const response = await fetch(`${service.url}${asset}`);
      expect(response.status, asset).to.equal(200);
      expect((await response.arrayBuffer()).byteLength, asset).to.be.greaterThan(10);
    }
    expect(await (await fetch(`${service.url}/docs/assets/init.js`)).text()).to.contain("url: '/openapi.json'");
    expect((await fetch(`${service.url}/docs/assets/..%2Fpackage.json`)).status).to.equal(404);
    expect((await fetch(`${service.url}/docs/assets/constructor`)).status).to.equal(404);
  });

  it('serves the resumable-upload page with its scripts, tus-js-client included, from our own origin', async () => {
    const page = await fetch(`${service.url}/docs/upload`);
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-security-policy')).to.contain("default-src 'self'");
    const html = await page.text();
    const scripts = [...html.matchAll(/<script([^>]*)>/g)].map((m) => /src="([^"]+)"/.exec(m[1]!)?.[1]);
    expect(scripts).to.deep.equal(['/docs/assets/tus.min.js', '/docs/assets/upload.js']);
    for (const script of scripts) {
      const response = await fetch(`${service.url}${script}`);
      expect(response.status, script).to.equal(200);
      expect(response.headers.get('content-type'), script).to.equal('text/javascript; charset=utf-8');
    }
    expect(await (await fetch(`${service.url}/docs/assets/tus.min.js`)).text()).to.contain('tus');
    expect(await (await fetch(`${service.url}/docs/assets/upload.js`)).text()).to.contain("endpoint: '/uploads/tus/'");
  });
});
