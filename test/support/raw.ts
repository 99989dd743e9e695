// Raw HTTP over a socket, for requests fetch refuses to send (broken bodies, slow clients, huge headers).
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: string;
  body: string;
}

/** Connects to the service's port; the caller writes and reads. */
export async function connect(url: string): Promise<net.Socket> {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** Resolves with what the server sent once it closed the connection (or after `timeoutMs`, with what came so far). */
export function readUntilClosed(
  socket: net.Socket,
  timeoutMs = 30_000,
): Promise<{ data: string; closedAfterMs: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    let data = '';
    const done = () => {
      clearTimeout(timer);
      resolve({ data, closedAfterMs: Date.now() - started });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      done();
    }, timeoutMs);
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.once('close', done);
    socket.on('error', () => undefined);
  });
}

export function parseResponse(raw: string): RawResponse {
  const split = raw.indexOf('\r\n\r\n');
  return { status: Number(raw.split(' ')[1]), headers: raw.slice(0, split), body: raw.slice(split + 4) };
}

/** Sends one complete request (kept open until the server answers and closes) and parses the answer. */
export async function rawRequest(url: string, request: string | Buffer): Promise<RawResponse> {
  const socket = await connect(url);
  const closed = readUntilClosed(socket);
  socket.write(request);
  return parseResponse((await closed).data);
}

/** A POST /upload/ with a hand-made multipart body (boundary `XyZ` unless told). */
export function multipartRequest(body: string | Buffer, extraHeaders = '', boundary = 'XyZ'): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const head = `POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n${extraHeaders}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), bytes]);
}

/** The multipart part of a file named `filename` (raw bytes of the header, as a client would send them). */
export const filePart = (filename: string, content: string, field = 'file') =>
  `--XyZ\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n${content}\r\n`;

/** One chunk of a `Transfer-Encoding: chunked` body. */
export const httpChunk = (data: Buffer | string): Buffer => {
  const bytes = Buffer.from(data);
  return Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
};

/** Writes `chunk` again and again, as fast as the server takes it, until it closes or `maxBytes` went out; returns the bytes sent. */
export async function sendUntilClosed(socket: net.Socket, chunk: Buffer, maxBytes: number): Promise<number> {
  let closed = socket.destroyed;
  const close = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  // A write after the server closed fails (EPIPE): the close that follows ends the loop.
  socket.on('error', () => undefined);
  let sent = 0;
  while (!closed && sent < maxBytes) {
    sent += chunk.length;
    if (!socket.write(chunk)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), close]);
  }
  return sent;
}
