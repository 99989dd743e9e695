import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { REPOSITORY } from '../scripts/helm.js';

describe('the toolchain', () => {
  it('runs the tests on the Node.js that .nvmrc pins (make puts it first on PATH)', () => {
    const pinned = readFileSync(`${REPOSITORY}.nvmrc`, 'utf8').trim();
    expect(process.version, 'run the tests through `make test`, which installs and uses the pinned Node.js').to.equal(
      `v${pinned}`,
    );
  });

  it('asks npm for the same major version in package.json', () => {
    const pinned = readFileSync(`${REPOSITORY}.nvmrc`, 'utf8').trim();
    const { engines } = JSON.parse(readFileSync(`${REPOSITORY}package.json`, 'utf8')) as { engines: { node: string } };
    expect(engines.node).to.equal(`>=${pinned.split('.')[0]}`);
  });
});
