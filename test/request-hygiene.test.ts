// What a client sends that PostgreSQL or a reader of it would take badly is refused alike on every route: NUL in a
// query or a body, a field given twice, a field no route knows; and what the service sends is problem+json even when
// the body fails to serialize.
import { expect } from 'chai';
import Koa from 'koa';
import type { AddressInfo } from 'node:net';
import { problemResponses } from '../api/errors.js';
import { firstDuplicateKey } from '../api/json.js';
import { captureLogs } from './support/logs.js';
import { expectProblem } from './support/problems.js';
import { startService, type TestService } from './support/service.js';

describe('firstDuplicateKey', () => {
  it('finds a key given twice in one object, as JSON.parse reads keys', () => {
    expect(firstDuplicateKey('{"a": 1, "b": 2, "a": 3}')).to.equal('a');
    expect(firstDuplicateKey('{"a": 1, "\\u0061": 2}')).to.equal('a');
    expect(firstDuplicateKey('{"x": {"k": 1, "k": 2}}')).to.equal('k');
    expect(firstDuplicateKey('[{"k": 1}, {"k": 2, "q\\"": "k", "q\\"": 0}]')).to.equal('q"');
  });

  it('takes the same key in different objects, and values equal to keys, as they are', () => {
    expect(firstDuplicateKey('{"a": {"a": "a"}, "b": [{"a": 1}, {"a": 2}], "c": "a, \\"a\\": 1"}')).to.equal(null);
    expect(firstDuplicateKey('[1, "two", {"three": [3]}]')).to.equal(null);
  });
});

describe('request hygiene on every route', function () {
  let service: TestService;
  let endpointPath: string;

  before(async () => {
    service = await startService({ worker: false, env: { WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE: 'true' } });
    const created = await send('POST', '/webhooks/', '{"url": "http://127.0.0.1:9/hook", "events": ["file.failed"]}');
    expect(created.status).to.equal(201);
    endpointPath = `/webhooks/${((await created.json()) as { id: string }).id}/`;
  });
  after(() => service.close());

  const send = (method: string, path: string, body: string) =>
    fetch(`${service.url}${path}`, { method, headers: { 'Content-Type': 'application/json' }, body });

  /** Every JSON body of the disk store's routes (direct uploads' is tested beside them, on a bucket). */
  const bodies = () => [
    { method: 'POST', path: '/files/reprocess', fields: '"dry_run": true' },
    { method: 'POST', path: '/webhooks/', fields: '"url": "http://127.0.0.1:9/x", "events": ["file.processed"]' },
    { method: 'PATCH', path: endpointPath, fields: '"description": "d"' },
  ];

  it('answers 400 invalid_body naming a field given twice, and changes nothing', async () => {
    for (const { method, path, fields } of bodies()) {
      const response = await send(method, path, `{${fields}, "description": "one", "description": "two"}`);
      const problem = await expectProblem(response, 400, 'invalid_body');
      expect(problem.errors, `${method} ${path}`).to.deep.equal([
        { field: 'description', message: 'This field is given twice; give it once.' },
      ]);
    }
    const endpoints = (await (await fetch(`${service.url}/webhooks/`)).json()) as { results: unknown[] };
    expect(endpoints.results).to.have.length(1);
  });

  it('answers 400 invalid_body naming a field that holds NUL, where PostgreSQL would have refused it', async () => {
    const cases: Array<[string, string, string, string]> = [
      ['POST', '/files/reprocess', '{"error_code": "x\\u0000y"}', 'error_code'],
      [
        'POST',
        '/webhooks/',
        '{"url": "http://127.0.0.1:9/x", "events": ["file.failed"], "description": "\\u0000"}',
        'description',
      ],
      ['PATCH', endpointPath, '{"description": "a\\u0000"}', 'description'],
    ];
    for (const [method, path, body, field] of cases) {
      const problem = await expectProblem(await send(method, path, body), 400, 'invalid_body');
      expect(
        problem.errors!.map((error) => error.field),
        `${method} ${path}`,
      ).to.deep.equal([field]);
    }
  });

  it('answers 400 invalid_body naming a field the route does not take', async () => {
    for (const { method, path, fields } of bodies()) {
      const problem = await expectProblem(
        await send(method, path, `{${fields}, "colour": "red"}`),
        400,
        'invalid_body',
      );
      expect(
        problem.errors!.map((error) => error.field),
        `${method} ${path}`,
      ).to.deep.equal(['colour']);
    }
  });

  it('answers 400 invalid_query for a query parameter that holds NUL, on every route, never a 500', async () => {
    for (const path of ['/files/?error_code=%00', '/files/?kind=image%00', `${endpointPath}deliveries/?cursor=%00`]) {
      const problem = await expectProblem(await fetch(`${service.url}${path}`), 400, 'invalid_query');
      expect(problem.errors![0]!.message, path).to.match(/NUL/);
    }
    const named = await expectProblem(await fetch(`${service.url}/files/?na%00me=x`), 400, 'invalid_query');
    expect(named.errors).to.deep.equal([
      { field: 'na\0me', message: 'Holds a NUL character (%00), which is not allowed.' },
    ]);
  });
});

describe('query parameters a route does not take', function () {
  let service: TestService;
  before(async () => {
    service = await startService({ worker: false });
  });
  after(() => service.close());

  it('answers 400 invalid_query naming each, so that a misspelt filter never lists every file', async () => {
    const problem = await expectProblem(await fetch(`${service.url}/files/?name=x&kind=image`), 400, 'invalid_query');
    expect(problem.errors).to.deep.equal([
      {
        field: 'name',
        message: 'Not a parameter of this route (limit, cursor, status, processed, kind, error_code, uploaded_before).',
      },
    ]);
    const none = await expectProblem(
      await fetch(`${service.url}/files/00000000-0000-7000-8000-000000000000/content?x=1`),
      400,
      'invalid_query',
    );
    expect(none.errors).to.deep.equal([{ field: 'x', message: 'This route takes no query.' }]);
    expect((await fetch(`${service.url}/files/?kind=image&limit=5`)).status).to.equal(200);
  });
});

describe('POST /files/reprocess without a body', function () {
  let service: TestService;
  before(async () => {
    service = await startService({ worker: false });
  });
  after(() => service.close());

  it('takes it as the empty filter (every field is optional): failed files, up to 1,000', async () => {
    const response = await fetch(`${service.url}/files/reprocess`, { method: 'POST' });
    expect(response.status, await response.clone().text()).to.equal(202);
    expect(await response.json()).to.deep.include({ dry_run: false, next_cursor: null });
    // A body of another type is still refused: only its absence means "nothing to filter".
    await expectProblem(
      await fetch(`${service.url}/files/reprocess`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: 'x',
      }),
      415,
      'unsupported_media_type',
    );
  });
});

describe('a response body that cannot be serialized', () => {
  it('is a problem+json 500, and the log records the 500 the client got', async () => {
    const logs = captureLogs('info');
    const app = new Koa();
    app.silent = true;
    app.use(async (ctx, next) => {
      await next();
      logs.logger.info({ status: ctx.status }, 'request');
    });
    app.use(problemResponses(logs.logger));
    app.use((ctx) => {
      // A BigInt has no JSON form: JSON.stringify throws, as it does for a body too large to be one string.
      ctx.body = { results: [{ size: 1n }] };
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      expect(response.status).to.equal(500);
      expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect(((await response.json()) as { code: string }).code).to.equal('internal_error');
      expect(logs.lines().find((line) => line.msg === 'request')).to.include({ status: 500 });
    } finally {
      server.close();
    }
  });
});
