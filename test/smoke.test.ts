import { expect } from 'chai';
import { freePort, runProcess } from './support/processes.js';
import { startService, type TestService } from './support/service.js';

describe('the smoke test (helm test and the image test run it)', function () {
  this.timeout(30_000);

  describe('against an API with a worker', () => {
    let service: TestService;
    before(async () => {
      service = await startService();
    });
    after(() => service.close());

    it('uploads a file, sees it processed, deletes it and exits 0', async () => {
      const { code, output } = await runProcess('dist/scripts/smoke.js', {
        API_URL: `${service.url}/`,
        API_TOKENS: 'first-token,second-token',
      });
      expect(code, output).to.equal(0);
      const [, id] =
        /^uploaded, processed and deleted file ([0-9a-f-]{36}) through http:\/\/127\.0\.0\.1:\d+\n$/.exec(output) ?? [];
      expect(id, output).to.be.a('string');
      expect((await fetch(`${service.url}/files/${id}/`)).status).to.equal(404);
    });
  });

  it('exits 1 naming the file when no worker processes it in time', async () => {
    const service = await startService({ worker: false });
    try {
      const { code, output } = await runProcess('dist/scripts/smoke.js', {
        API_URL: service.url,
        SMOKE_TIMEOUT_MS: '300',
      });
      expect(code).to.equal(1);
      expect(output).to.match(
        /^smoke test failed: file [0-9a-f-]{36} is still queued after 300 ms: is a worker running on the same queue\?\n$/,
      );
    } finally {
      await service.close();
    }
  });

  it('exits 1 with the reason when the API does not answer', async () => {
    const { code, output } = await runProcess('dist/scripts/smoke.js', {
      API_URL: `http://127.0.0.1:${await freePort()}`,
    });
    expect(code).to.equal(1);
    expect(output).to.equal('smoke test failed: fetch failed (ECONNREFUSED)\n');
  });
});
