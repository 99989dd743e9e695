// What a rendering's URL answers, checked as a client would see it.
import { expect } from 'chai';
import sharp from 'sharp';

/** The size of the WebP a rendering's URL (a File's `thumbnail` or `preview`) answers with 200. */
export async function webpSize(url: string | null): Promise<{ width?: number; height?: number }> {
  expect(url, 'a rendering').to.be.a('string');
  const response = await fetch(url!);
  expect(response.status, url!).to.equal(200);
  expect(response.headers.get('content-type')).to.equal('image/webp');
  const { format, width, height } = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
  expect(format).to.equal('webp');
  return { width, height };
}
