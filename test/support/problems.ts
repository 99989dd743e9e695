import { expect } from 'chai';

export type Problem = {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  request_id: string;
  errors?: Array<{ field: string; message: string }>;
};

/** Asserts an RFC 9457 problem with the given status and code, and returns it. */
export async function expectProblem(response: Response, status: number, code: string): Promise<Problem> {
  expect(response.status, `status for ${code}`).to.equal(status);
  expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
  const problem = (await response.json()) as Problem;
  expect(problem).to.include({ status, code, request_id: response.headers.get('x-request-id') });
  expect(problem.title).to.be.a('string').and.not.equal('');
  expect(problem.type).to.match(/^https:\/\//);
  expect(problem.detail)
    .to.be.a('string')
    .and.not.match(/at .*\.js:\d+|ECONN|127\.0\.0\.1/);
  return problem;
}
