import { expect } from 'chai';
import { Webhook } from 'standardwebhooks';
import { signatureHeaders } from '../core/webhooks/signing.js';
import { sql } from './support/db.js';
import { expectProblem, type Problem } from './support/problems.js';
import { startService, uploadFile, type TestService } from './support/service.js';

interface Endpoint {
  id: string;
  url: string;
  events: string[];
  description: string;
  enabled: boolean;
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
  secret?: string;
}

interface Delivery {
  id: string;
  event: string;
  file_id: string;
  attempts: number;
  status: string;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
  delivered_at: string | null;
}

const ENDPOINT_FIELDS = [
  'id',
  'url',
  'events',
  'description',
  'enabled',
  'disabled_reason',
  'created_at',
  'updated_at',
];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000';

/** A JSON request to the service. */
const call = (base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });

async function json<T>(response: Response, status: number): Promise<T> {
  expect(response.status, await response.clone().text()).to.equal(status);
  return (await response.json()) as T;
}

/** 422 webhook_url_forbidden naming the url field (the detail may name a loopback address, which expectProblem refuses). */
async function expectForbiddenUrl(response: Response, url: string): Promise<Problem> {
  expect(response.status, url).to.equal(422);
  expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
  const problem = (await response.json()) as Problem;
  expect(problem, url).to.include({ status: 422, code: 'webhook_url_forbidden', title: 'Webhook URL forbidden' });
  expect(problem.errors, url).to.deep.equal([{ field: 'url', message: problem.detail }]);
  return problem;
}

const endpointCount = async () =>
  Number((await sql<{ n: string }>('SELECT count(*) AS n FROM webhook_endpoints'))[0]!.n);

/**
 * `count` endpoints written straight into the table, as many registrations would leave them: the first `disabled`
 * of them disabled, and `sameInstant` at a time sharing their `created_at`.
 */
async function insertEndpoints(count: number, options: { disabled?: number; sameInstant?: number } = {}) {
  await sql(
    `INSERT INTO webhook_endpoints (id, url, events, secret, base_url, enabled, created_at)
     SELECT gen_random_uuid(), 'https://hooks.example/' || g, '{file.processed}', 'whsec_x', 'https://api.example',
            g > $2, now() - ((g - 1) / $3) * interval '1 second'
     FROM generate_series(1, $1) AS g`,
    [count, options.disabled ?? 0, options.sameInstant ?? 1],
  );
}

/** A delivery row written as the trigger and the dispatcher would leave it. */
async function insertDelivery(
  endpointId: string,
  row: { ageSeconds: number; status?: string; attempts?: number; lastStatus?: number; delivered?: boolean },
): Promise<string> {
  const [inserted] = await sql<{ id: string }>(
    `INSERT INTO webhook_deliveries
       (endpoint_id, event_type, file_id, file, created_at, status, attempts, next_attempt_at, last_status, last_error, delivered_at)
     VALUES ($1, 'file.processed', gen_random_uuid(), '{}', now() - $2 * interval '1 second', $3, $4,
             now() + interval '1 hour', $5, $6, CASE WHEN $7 THEN now() END)
     RETURNING id`,
    [
      endpointId,
      row.ageSeconds,
      row.status ?? 'pending',
      row.attempts ?? 0,
      row.lastStatus ?? null,
      row.lastStatus && row.lastStatus >= 300 ? `the receiver answered ${row.lastStatus}` : null,
      row.delivered ?? false,
    ],
  );
  return inserted!.id;
}

/** Fans out every event waiting, as the workers' dispatchers do (no worker runs here). */
async function fanOutEverything(service: TestService): Promise<void> {
  for (;;) if ((await service.db.webhooks.fanOut(100, 5_000)).events === 0) return;
}

describe('webhook endpoints API', () => {
  /** Sends anywhere (as tests and `make run` do). */
  let open: TestService;
  /** The defaults: https only, public addresses only. */
  let strict: TestService;
  /** http allowed, private addresses not. */
  let httpOnly: TestService;
  /** MAX_WEBHOOK_ENDPOINTS=30. */
  let capped: TestService;

  const create = async (base: string, body: Record<string, unknown>) =>
    json<Endpoint>(await call(base, 'POST', '/webhooks/', body), 201);

  before(async () => {
    [open, strict, httpOnly, capped] = await Promise.all([
      startService({ worker: false, env: { WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE: 'true' } }),
      startService({ worker: false }),
      startService({ worker: false, env: { WEBHOOK_ALLOW_HTTP: 'true' } }),
      startService({ worker: false, env: { MAX_WEBHOOK_ENDPOINTS: '30' } }),
    ]);
  });
  // Endpoints left behind would record the events of the suites that run after this one.
  beforeEach(() => sql('DELETE FROM webhook_endpoints'));
  after(async () => {
    await sql('DELETE FROM webhook_endpoints');
    await Promise.all([open?.close(), strict?.close(), httpOnly?.close(), capped?.close()]);
  });

  describe('POST /webhooks/', () => {
    it('answers 201 with the endpoint, its Location and its signing secret, which no other answer shows', async () => {
      const response = await call(open.url, 'POST', '/webhooks/', {
        url: 'http://127.0.0.1:9/hooks?source=files',
        events: ['file.failed', 'file.processed', 'file.failed'],
        description: 'the billing service',
      });
      const created = await json<Endpoint>(response, 201);
      expect(Object.keys(created)).to.have.members([...ENDPOINT_FIELDS, 'secret']);
      expect(created).to.include({
        url: 'http://127.0.0.1:9/hooks?source=files',
        description: 'the billing service',
        enabled: true,
        disabled_reason: null,
      });
      expect(created.events, 'duplicates removed, in the canonical order').to.deep.equal([
        'file.processed',
        'file.failed',
      ]);
      expect(created.id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(created.created_at).to.match(ISO);
      expect(created.updated_at).to.equal(created.created_at);
      expect(created.secret).to.match(/^whsec_[A-Za-z0-9+/]{32}$/);
      expect(response.headers.get('location')).to.equal(`${open.url}/webhooks/${created.id}/`);

      const [stored] = await sql<{ secret: string; base_url: string }>(
        'SELECT secret, base_url FROM webhook_endpoints WHERE id = $1',
        [created.id],
      );
      expect(stored).to.deep.equal({ secret: created.secret, base_url: open.url });

      const { secret, ...shown } = created;
      expect(await json<Endpoint>(await fetch(response.headers.get('location')!), 200)).to.deep.equal(shown);
      expect(await json(await fetch(`${open.url}/webhooks/`), 200)).to.deep.equal({ results: [shown], next: null });
      const patched = await json<Endpoint>(
        await call(open.url, 'PATCH', `/webhooks/${created.id}/`, { description: 'x' }),
        200,
      );
      expect(patched).to.not.have.property('secret');

      // A Standard Webhooks library reads the key out of the secret as the service signs with it.
      const body = '{"type":"file.processed"}';
      const at = new Date(Math.floor(Date.now() / 1000) * 1000);
      const ours = signatureHeaders(secret!, 'msg_1', at.getTime() / 1000, body);
      expect(new Webhook(secret!).sign('msg_1', at, body)).to.equal(ours['webhook-signature']);
      expect(new Webhook(secret!).verify(body, ours)).to.deep.equal({ type: 'file.processed' });
    });

    it('gives each endpoint its own id and secret, and an empty description by default', async () => {
      const one = await create(open.url, { url: 'https://hooks.example/one', events: ['file.deleted'] });
      const two = await create(open.url, { url: 'https://hooks.example/one', events: ['file.deleted'] });
      expect(one.id).to.not.equal(two.id);
      expect(one.secret).to.not.equal(two.secret);
      expect(one.description).to.equal('');
    });

    it('answers 400 invalid_body naming each bad field, and keeps nothing', async () => {
      const cases: Array<[unknown, string[]]> = [
        [{}, ['url', 'events']],
        [{ url: 'https://hooks.example/', events: [] }, ['events']],
        [{ url: 'https://hooks.example/', events: 'file.processed' }, ['events']],
        [{ url: 'https://hooks.example/', events: ['file.processed', 'file.created'] }, ['events[1]']],
        [{ url: 'hooks.example/hook', events: ['file.processed'] }, ['url']],
        [{ url: `https://8.8.8.8/${'a'.repeat(2048)}`, events: ['file.processed'] }, ['url']],
        [{ url: 42, events: ['file.processed'] }, ['url']],
        [{ url: '', events: ['file.processed'] }, ['url']],
        [{ events: ['file.processed'], description: 'x'.repeat(1025) }, ['url', 'description']],
        [{ url: 'https://hooks.example/', events: ['file.failed'], description: null }, ['description']],
        [{ url: 'https://hooks.example/', events: ['file.failed'], secret: 'whsec_mine' }, ['secret']],
        [{ url: 'https://hooks.example/', events: ['file.failed'], enabled: false }, ['enabled']],
      ];
      for (const [body, fields] of cases) {
        const problem = await expectProblem(await call(open.url, 'POST', '/webhooks/', body), 400, 'invalid_body');
        expect(
          problem.errors?.map((error) => error.field),
          JSON.stringify(body),
        ).to.have.members(fields);
      }
      const described = { url: 'https://hooks.example/', events: ['file.failed'], description: 'x'.repeat(1024) };
      expect((await create(open.url, described)).description).to.have.length(1024);
      await sql('DELETE FROM webhook_endpoints');

      await expectProblem(await call(open.url, 'POST', '/webhooks/', '[]'), 400, 'invalid_body');
      await expectProblem(await call(open.url, 'POST', '/webhooks/', '{"url":'), 400, 'invalid_body');
      await expectProblem(
        await call(open.url, 'POST', '/webhooks/', {
          url: 'https://hooks.example/',
          events: ['file.failed'],
          description: 'x'.repeat(20_000),
        }),
        400,
        'invalid_body',
      );
      await expectProblem(
        await fetch(`${open.url}/webhooks/`, {
          method: 'POST',
          headers: { 'Content-Type': 'text/plain' },
          body: JSON.stringify({ url: 'https://hooks.example/', events: ['file.failed'] }),
        }),
        415,
        'unsupported_media_type',
      );
      await expectProblem(await fetch(`${open.url}/webhooks/`, { method: 'POST' }), 415, 'unsupported_media_type');
      expect(await endpointCount()).to.equal(0);
    });

    it('answers 422 webhook_url_forbidden for URLs it may not send to, and keeps nothing', async () => {
      const events = ['file.processed'];
      const refused: Array<[TestService, string, RegExp]> = [
        [strict, 'ftp://files.example/hook', /must be https/],
        [strict, 'http://8.8.8.8/hook', /WEBHOOK_ALLOW_HTTP/],
        [strict, 'https://user:password@8.8.8.8/hook', /credentials/],
        [strict, 'https://8.8.8.8/hook#part', /fragment/],
        [httpOnly, 'http://127.0.0.1:1/', /127\.0\.0\.1, a loopback/],
        [strict, 'https://127.0.0.1/', /127\.0\.0\.1/],
        [strict, 'https://10.1.2.3/', /10\.1\.2\.3/],
        [strict, 'https://169.254.169.254/latest/meta-data/', /169\.254\.169\.254/],
        [strict, 'https://[::1]/', /::1/],
        [strict, 'https://[::ffff:10.0.0.1]/', /::ffff:a00:1/],
        [strict, 'https://[fd00:ec2::254]/', /fd00:ec2::254/],
        [strict, 'https://[::127.0.0.1]/', /::7f00:1/],
        [strict, 'https://[2002:7f00:1::1]/', /2002:7f00:1::1/],
        [strict, 'https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/', /2001:0:4136:e378:8000:63bf:80ff:fffe/],
        [strict, 'https://[::ffff:0:7f00:1]/', /::ffff:0:7f00:1/],
        [strict, 'https://100.64.0.1/', /100\.64\.0\.1/],
        [strict, 'https://localhost/', /localhost resolves to/],
        [strict, 'https://0x7f.1/', /127\.0\.0\.1/],
      ];
      for (const [service, url, reason] of refused) {
        const problem = await expectForbiddenUrl(await call(service.url, 'POST', '/webhooks/', { url, events }), url);
        expect(problem.detail, url).to.match(reason);
      }
      expect(await endpointCount()).to.equal(0);

      // What those refuse, the settings allow; and a public address is fine by default.
      expect((await create(httpOnly.url, { url: 'http://8.8.8.8/hook', events })).url).to.equal('http://8.8.8.8/hook');
      expect((await create(strict.url, { url: 'https://8.8.8.8/hook', events })).url).to.equal('https://8.8.8.8/hook');
      expect((await create(open.url, { url: 'https://[::1]/', events })).url).to.equal('https://[::1]/');
    });
  });

  describe('POST /webhooks/ at MAX_WEBHOOK_ENDPOINTS', () => {
    const register = (n: number) =>
      call(capped.url, 'POST', '/webhooks/', { url: `https://8.8.8.8/hooks/${n}`, events: ['file.processed'] });

    it('answers 409 webhook_limit_reached past the cap, counting disabled endpoints too, and keeps nothing', async () => {
      await insertEndpoints(30, { disabled: 1 });
      const problem = await expectProblem(await register(0), 409, 'webhook_limit_reached');
      expect(problem.detail).to.contain('30').and.contain('MAX_WEBHOOK_ENDPOINTS');
      expect(await endpointCount()).to.equal(30);

      // Deleting one makes room for one.
      const [one] = await sql<{ id: string }>('SELECT id FROM webhook_endpoints LIMIT 1');
      expect((await call(capped.url, 'DELETE', `/webhooks/${one!.id}/`)).status).to.equal(204);
      expect((await register(1)).status).to.equal(201);
      await expectProblem(await register(2), 409, 'webhook_limit_reached');
      expect(await endpointCount()).to.equal(30);
    });

    it('lets exactly as many of 20 concurrent registrations through as there is room for', async () => {
      await insertEndpoints(25);
      const answers = await Promise.all(Array.from({ length: 20 }, (_, n) => register(n)));
      const statuses = answers.map((response) => response.status);
      expect(statuses.filter((status) => status === 201)).to.have.length(5);
      expect(statuses.filter((status) => status === 409)).to.have.length(15);
      for (const refused of answers.filter((response) => response.status === 409))
        await expectProblem(refused, 409, 'webhook_limit_reached');
      expect(await endpointCount()).to.equal(30);
    });
  });

  describe('GET /webhooks/ and GET /webhooks/{id}/', () => {
    it('lists every endpoint, oldest first, without secrets', async () => {
      const first = await create(open.url, { url: 'https://hooks.example/a', events: ['file.processed'] });
      const second = await create(open.url, { url: 'https://hooks.example/b', events: ['file.deleted'] });
      const { results } = await json<{ results: Endpoint[] }>(await fetch(`${open.url}/webhooks`), 200);
      expect(results.map((endpoint) => endpoint.id)).to.deep.equal([first.id, second.id]);
      for (const endpoint of results) expect(Object.keys(endpoint)).to.have.members(ENDPOINT_FIELDS);
      const one = await json<Endpoint>(await fetch(`${open.url}/webhooks/${second.id.toUpperCase()}`), 200);
      expect(one).to.include({ id: second.id, url: 'https://hooks.example/b' });
    });

    it('pages through the endpoints oldest first, each exactly once, by following next', async () => {
      // Endpoints made in the same millisecond are ordered by id.
      await insertEndpoints(23, { sameInstant: 3 });
      const expected = (await sql<{ id: string }>('SELECT id FROM webhook_endpoints ORDER BY created_at, id')).map(
        (row) => row.id,
      );
      const seen: string[] = [];
      const sizes: number[] = [];
      let next: string | null = `${open.url}/webhooks/?limit=5`;
      // Bounded, so that a cursor that does not move fails the test rather than hanging it.
      while (next && sizes.length < 10) {
        const page: { results: Endpoint[]; next: string | null } = await json(await fetch(next), 200);
        seen.push(...page.results.map((endpoint) => endpoint.id));
        sizes.push(page.results.length);
        for (const endpoint of page.results) expect(Object.keys(endpoint)).to.have.members(ENDPOINT_FIELDS);
        next = page.next;
        if (next) expect(next.startsWith(`${open.url}/webhooks/?limit=5&cursor=`), next).to.equal(true);
      }
      expect(sizes).to.deep.equal([5, 5, 5, 5, 3]);
      expect(seen).to.deep.equal(expected);

      // By default a page holds every endpoint the default MAX_WEBHOOK_ENDPOINTS allows.
      const all = await json<{ results: Endpoint[]; next: string | null }>(await fetch(`${open.url}/webhooks/`), 200);
      expect(all.results.map((endpoint) => endpoint.id)).to.deep.equal(expected);
      expect(all.next).to.equal(null);
    });

    it('answers 400 invalid_query for a bad limit or a forged cursor', async () => {
      for (const [query, fields] of [
        ['limit=0', ['limit']],
        ['limit=1001', ['limit']],
        ['limit=ten&cursor=abc', ['limit', 'cursor']],
        ['limit=1&limit=2', ['limit']],
        [`cursor=${Buffer.from(`2026-01-01T00:00:00.000Z_${UNKNOWN_ID}_x`).toString('base64url')}`, ['cursor']],
      ] as const) {
        const problem = await expectProblem(await fetch(`${open.url}/webhooks/?${query}`), 400, 'invalid_query');
        expect(
          problem.errors?.map((error) => error.field),
          query,
        ).to.deep.equal(fields);
      }
      expect((await fetch(`${open.url}/webhooks/?limit=1000`)).status).to.equal(200);
    });

    it('answers 404 not_found for an unknown or malformed id, on every route below it', async () => {
      const endpoint = await create(open.url, { url: 'https://hooks.example/', events: ['file.failed'] });
      const delivery = await insertDelivery(endpoint.id, { ageSeconds: 1 });
      for (const id of [UNKNOWN_ID, 'not-an-id']) {
        await expectProblem(await fetch(`${open.url}/webhooks/${id}/`), 404, 'not_found');
        await expectProblem(await call(open.url, 'PATCH', `/webhooks/${id}/`, { enabled: false }), 404, 'not_found');
        await expectProblem(await call(open.url, 'DELETE', `/webhooks/${id}/`), 404, 'not_found');
        await expectProblem(await fetch(`${open.url}/webhooks/${id}/deliveries/`), 404, 'not_found');
        await expectProblem(
          await call(open.url, 'POST', `/webhooks/${id}/deliveries/${delivery}/retry`),
          404,
          'not_found',
        );
        await expectProblem(
          await call(open.url, 'POST', `/webhooks/${endpoint.id}/deliveries/${id}/retry`),
          404,
          'not_found',
        );
      }
      expect((await fetch(`${open.url}/webhooks/${endpoint.id}/`)).status).to.equal(200);
    });
  });

  describe('PATCH /webhooks/{id}/', () => {
    it('disables an endpoint (manual) and enables it again, whatever disabled it', async () => {
      const endpoint = await create(open.url, { url: 'https://hooks.example/', events: ['file.processed'] });
      const disabled = await json<Endpoint>(
        await call(open.url, 'PATCH', `/webhooks/${endpoint.id}/`, { enabled: false }),
        200,
      );
      expect(disabled).to.include({ enabled: false, disabled_reason: 'manual', url: endpoint.url });
      expect(Date.parse(disabled.updated_at)).to.be.at.least(Date.parse(endpoint.updated_at));
      expect(await json<Endpoint>(await fetch(`${open.url}/webhooks/${endpoint.id}/`), 200)).to.deep.equal(disabled);

      // As the dispatcher leaves an endpoint whose receiver answered 410 Gone.
      await sql(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'gone', failing_since = now() WHERE id = $1",
        [endpoint.id],
      );
      const gone = await json<Endpoint>(await fetch(`${open.url}/webhooks/${endpoint.id}/`), 200);
      expect(gone).to.include({ enabled: false, disabled_reason: 'gone' });
      const enabled = await json<Endpoint>(
        await call(open.url, 'PATCH', `/webhooks/${endpoint.id}/`, { enabled: true }),
        200,
      );
      expect(enabled).to.include({ enabled: true, disabled_reason: null });
      const [stored] = await sql('SELECT failing_since FROM webhook_endpoints WHERE id = $1', [endpoint.id]);
      expect(stored).to.deep.equal({ failing_since: null });
    });

    it('changes events and description, and checks a new url as registration does', async () => {
      const endpoint = await create(strict.url, { url: 'https://8.8.8.8/hook', events: ['file.processed'] });
      const changed = await json<Endpoint>(
        await call(strict.url, 'PATCH', `/webhooks/${endpoint.id}/`, {
          events: ['file.deleted', 'file.failed', 'file.deleted'],
          description: 'audit',
        }),
        200,
      );
      expect(changed).to.include({ url: 'https://8.8.8.8/hook', description: 'audit', enabled: true });
      expect(changed.events).to.deep.equal(['file.failed', 'file.deleted']);

      for (const url of ['https://10.0.0.1/hook', 'http://8.8.8.8/hook', 'https://[::ffff:127.0.0.1]/']) {
        await expectForbiddenUrl(await call(strict.url, 'PATCH', `/webhooks/${endpoint.id}/`, { url }), url);
      }
      expect((await json<Endpoint>(await fetch(`${strict.url}/webhooks/${endpoint.id}/`), 200)).url).to.equal(
        'https://8.8.8.8/hook',
      );
      const moved = await json<Endpoint>(
        await call(strict.url, 'PATCH', `/webhooks/${endpoint.id}/`, { url: 'https://1.1.1.1/other' }),
        200,
      );
      expect(moved).to.include({ url: 'https://1.1.1.1/other', description: 'audit' });
    });

    it('answers 400 invalid_body for an empty or invalid change, and changes nothing', async () => {
      const endpoint = await create(open.url, { url: 'https://hooks.example/', events: ['file.processed'] });
      const path = `/webhooks/${endpoint.id}/`;
      const empty = await expectProblem(await call(open.url, 'PATCH', path, {}), 400, 'invalid_body');
      expect(empty.errors).to.deep.equal([
        { field: '(body)', message: 'Send at least one field to change (url, events, description, enabled).' },
      ]);
      const cases: Array<[unknown, string[]]> = [
        [{ enable: false }, ['enable']],
        [{ enabled: 'false' }, ['enabled']],
        [{ url: null }, ['url']],
        [{ events: [] }, ['events']],
        [{ events: ['file.uploaded'], description: 7 }, ['events[0]', 'description']],
        [{ secret: 'whsec_mine', enabled: false }, ['secret']],
      ];
      for (const [body, fields] of cases) {
        const problem = await expectProblem(await call(open.url, 'PATCH', path, body), 400, 'invalid_body');
        expect(
          problem.errors?.map((error) => error.field),
          JSON.stringify(body),
        ).to.have.members(fields);
      }
      await expectProblem(await call(open.url, 'PATCH', path, 'null'), 400, 'invalid_body');
      const { secret: _secret, ...unchanged } = endpoint;
      expect(await json<Endpoint>(await fetch(`${open.url}${path}`), 200)).to.deep.equal(unchanged);
    });
  });

  describe('DELETE /webhooks/{id}/', () => {
    it('answers 204 and removes the endpoint with its deliveries', async () => {
      const endpoint = await create(open.url, { url: 'https://hooks.example/', events: ['file.processed'] });
      const other = await create(open.url, { url: 'https://hooks.example/other', events: ['file.processed'] });
      await insertDelivery(endpoint.id, { ageSeconds: 1 });
      await insertDelivery(other.id, { ageSeconds: 1 });
      const response = await call(open.url, 'DELETE', `/webhooks/${endpoint.id}/`);
      expect(response.status).to.equal(204);
      await expectProblem(await fetch(`${open.url}/webhooks/${endpoint.id}/`), 404, 'not_found');
      await expectProblem(await call(open.url, 'DELETE', `/webhooks/${endpoint.id}/`), 404, 'not_found');
      const left = await sql<{ endpoint_id: string }>('SELECT endpoint_id FROM webhook_deliveries');
      expect(left).to.deep.equal([{ endpoint_id: other.id }]);
    });
  });

  describe('GET /webhooks/{id}/deliveries/', () => {
    it('lists the deliveries newest first, page by page, with the fields of the contract', async () => {
      const endpoint = await create(open.url, { url: 'https://hooks.example/', events: ['file.processed'] });
      const other = await create(open.url, { url: 'https://hooks.example/other', events: ['file.processed'] });
      await insertDelivery(other.id, { ageSeconds: 2 });
      const delivered = await insertDelivery(endpoint.id, {
        ageSeconds: 50,
        status: 'delivered',
        attempts: 2,
        lastStatus: 204,
        delivered: true,
      });
      const failed = await insertDelivery(endpoint.id, {
        ageSeconds: 40,
        status: 'failed',
        attempts: 9,
        lastStatus: 500,
      });
      const newer = [];
      for (let age = 30; age > 0; age -= 10) newer.push(await insertDelivery(endpoint.id, { ageSeconds: age }));

      const seen: Delivery[] = [];
      let next: string | null = `${open.url}/webhooks/${endpoint.id}/deliveries/?limit=2`;
      let pages = 0;
      // Bounded, so that a cursor that does not move fails the test rather than hanging it.
      while (next && pages < 5) {
        const page: { results: Delivery[]; next: string | null } = await json(await fetch(next), 200);
        expect(page.results.length).to.be.at.most(2);
        seen.push(...page.results);
        next = page.next;
        if (next)
          expect(next.startsWith(`${open.url}/webhooks/${endpoint.id}/deliveries/?limit=2&cursor=`)).to.equal(true);
        pages += 1;
      }
      expect(pages).to.equal(3);
      expect(seen.map((delivery) => delivery.id)).to.deep.equal([...newer.reverse(), failed, delivered]);
      for (const delivery of seen) {
        expect(Object.keys(delivery)).to.have.members([
          'id',
          'event',
          'file_id',
          'attempts',
          'status',
          'last_status',
          'last_error',
          'next_attempt_at',
          'created_at',
          'delivered_at',
        ]);
        expect(delivery.created_at).to.match(ISO);
      }
      expect(seen[0]).to.include({ event: 'file.processed', status: 'pending', attempts: 0, last_status: null });
      expect(seen[0]!.next_attempt_at).to.match(ISO);
      expect(seen[3]).to.include({
        status: 'failed',
        attempts: 9,
        last_status: 500,
        last_error: 'the receiver answered 500',
        next_attempt_at: null,
        delivered_at: null,
      });
      expect(seen[4]).to.include({ status: 'delivered', last_status: 204, last_error: null, next_attempt_at: null });
      expect(seen[4]!.delivered_at).to.match(ISO);

      const all = await json<{ results: Delivery[]; next: null }>(
        await fetch(`${open.url}/webhooks/${endpoint.id}/deliveries/`),
        200,
      );
      expect(all.results).to.deep.equal(seen);
      expect(all.next).to.equal(null);
    });

    it('answers 400 invalid_query for a bad limit or a forged cursor', async () => {
      const endpoint = await create(open.url, { url: 'https://hooks.example/', events: ['file.processed'] });
      const path = `${open.url}/webhooks/${endpoint.id}/deliveries/`;
      for (const [query, fields] of [
        ['limit=0', ['limit']],
        ['limit=201', ['limit']],
        ['limit=ten&cursor=abc', ['limit', 'cursor']],
        ['limit=1&limit=2', ['limit']],
        [`cursor=${Buffer.from(`2026-01-01T00:00:00.000Z_${UNKNOWN_ID}_x`).toString('base64url')}`, ['cursor']],
      ] as const) {
        const problem = await expectProblem(await fetch(`${path}?${query}`), 400, 'invalid_query');
        expect(
          problem.errors?.map((error) => error.field),
          query,
        ).to.deep.equal(fields);
      }
      expect((await fetch(`${path}?limit=200`)).status).to.equal(200);
    });

    it('shows the deliveries the database records when a File settles or is deleted, for enabled endpoints only', async () => {
      const listening = await create(open.url, {
        url: 'https://hooks.example/',
        events: ['file.processed', 'file.deleted'],
      });
      const deaf = await create(open.url, { url: 'https://hooks.example/off', events: ['file.processed'] });
      await call(open.url, 'PATCH', `/webhooks/${deaf.id}/`, { enabled: false });
      const file = await uploadFile(open.url, { name: 'note.txt', content: 'hello\n' });
      // No worker here: the File is settled as a worker would settle it, and its events fanned out as a worker's
      // dispatcher would.
      await sql("UPDATE files SET status = 'processed', processed_at = now() WHERE id = $1", [file.id]);
      expect((await call(open.url, 'DELETE', `/files/${file.id}/`)).status).to.equal(204);
      await fanOutEverything(open);

      const { results } = await json<{ results: Delivery[] }>(
        await fetch(`${open.url}/webhooks/${listening.id}/deliveries/`),
        200,
      );
      expect(
        results.map(({ event, file_id, status, attempts }) => ({ event, file_id, status, attempts })),
      ).to.deep.equal([
        { event: 'file.deleted', file_id: file.id, status: 'pending', attempts: 0 },
        { event: 'file.processed', file_id: file.id, status: 'pending', attempts: 0 },
      ]);
      const none = await json<{ results: Delivery[] }>(await fetch(`${open.url}/webhooks/${deaf.id}/deliveries/`), 200);
      expect(none.results).to.deep.equal([]);
    });
  });

  describe('POST /webhooks/{id}/deliveries/{delivery_id}/retry', () => {
    it('answers 202 with the delivery, pending and due now, keeping its id and attempts', async () => {
      const endpoint = await create(open.url, { url: 'https://hooks.example/', events: ['file.processed'] });
      const other = await create(open.url, { url: 'https://hooks.example/other', events: ['file.processed'] });
      const failed = await insertDelivery(endpoint.id, {
        ageSeconds: 90_000,
        status: 'failed',
        attempts: 9,
        lastStatus: 503,
      });
      const before = Date.now();
      const response = await call(
        open.url,
        'POST',
        `/webhooks/${endpoint.id}/deliveries/${failed.toUpperCase()}/retry`,
      );
      const retried = await json<Delivery>(response, 202);
      expect(retried).to.include({ id: failed, status: 'pending', attempts: 9, last_status: 503 });
      const due = Date.parse(retried.next_attempt_at!);
      expect(due).to.be.within(before - 2_000, Date.now() + 1_000);
      const [stored] = await sql<{ status: string; due: boolean }>(
        'SELECT status, next_attempt_at <= now() AS due FROM webhook_deliveries WHERE id = $1',
        [failed],
      );
      expect(stored).to.deep.equal({ status: 'pending', due: true });

      // A delivery is found only under its own endpoint.
      await expectProblem(
        await call(open.url, 'POST', `/webhooks/${other.id}/deliveries/${failed}/retry`),
        404,
        'not_found',
      );
    });
  });

  describe('with API_TOKENS', () => {
    let guarded: TestService;
    const token = 'webhook-token-0123456789abcdef';
    before(async () => {
      guarded = await startService({ worker: false, env: { API_TOKENS: token, WEBHOOK_ALLOW_PRIVATE: 'true' } });
    });
    after(() => guarded.close());

    it('answers 401 unauthorized on every webhook route without the bearer token, and serves them with it', async () => {
      const body = { url: 'https://hooks.example/', events: ['file.processed'] };
      for (const [method, path] of [
        ['POST', '/webhooks/'],
        ['GET', '/webhooks/'],
        ['GET', `/webhooks/${UNKNOWN_ID}/`],
        ['PATCH', `/webhooks/${UNKNOWN_ID}/`],
        ['DELETE', `/webhooks/${UNKNOWN_ID}/`],
        ['GET', `/webhooks/${UNKNOWN_ID}/deliveries/`],
        ['POST', `/webhooks/${UNKNOWN_ID}/deliveries/${UNKNOWN_ID}/retry`],
      ] as const) {
        const response = await call(
          guarded.url,
          method,
          path,
          method === 'POST' || method === 'PATCH' ? body : undefined,
        );
        await expectProblem(response, 401, 'unauthorized');
      }
      expect(await endpointCount()).to.equal(0);
      const authorized = { Authorization: `Bearer ${token}` };
      const created = await json<Endpoint>(await call(guarded.url, 'POST', '/webhooks/', body, authorized), 201);
      expect(created.secret).to.match(/^whsec_/);
      expect((await call(guarded.url, 'GET', '/webhooks/', undefined, authorized)).status).to.equal(200);
    });
  });

  it('answers 405 with Allow for a method a webhook route does not take', async () => {
    const response = await call(open.url, 'PUT', `/webhooks/${UNKNOWN_ID}/`, { enabled: true });
    const problem = await expectProblem(response, 405, 'method_not_allowed');
    expect(response.headers.get('allow')).to.include('PATCH').and.include('DELETE');
    expect(problem.detail).to.contain('PATCH');
  });
});
