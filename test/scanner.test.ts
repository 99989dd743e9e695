// The contract of our clamd client (core/scanner/clamd.ts), against a real clamd (Debian's clamav-daemon, with a
// signature database the test writes): its verdicts, clamd's limits, never holding the bytes, and no verdict ever
// made up when clamd is frozen, dead or away. A fake server stands in only for what a real clamd cannot be made to do
// (a garbled, endless or split answer, a close without one, a reset that loses its answer). The worker's use of the
// client is test/scanning.test.ts.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { clamdScanner, ScannerUnavailableError, type ByteSource, type Scanner } from '../core/scanner/index.js';
import {
  EICAR,
  EICAR_SIGNATURE,
  reportedName,
  requireClamd,
  startClamd,
  ZIP_MARKER,
  ZIP_MARKER_SIGNATURE,
  type Clamd,
} from './support/clamd.js';
import { eventually, rejection } from './support/eventually.js';
import { png, zip } from './support/fixtures.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** Long enough for a busy machine: a test that expects no timeout never meets this one. */
const PATIENT_MS = 60_000;
/** For a clamd that is frozen on purpose: the inactivity timeout is then the only way out. */
const IMPATIENT_MS = 500;

/** A stream of `size` bytes made as they are read (fresh chunks, never held here), then `tail`; counts what was read. */
function generated(size: number, { tail = Buffer.alloc(0), onRead }: GeneratedOptions = {}) {
  let pulled = 0;
  const stream = new Readable({
    read() {
      if (pulled >= size) {
        if (tail.length > 0) this.push(tail);
        this.push(null);
        return;
      }
      const length = Math.min(64 * KIB, size - pulled);
      pulled += length;
      onRead?.(pulled);
      // one byte repeated: never a signature, whatever the chunk
      this.push(Buffer.alloc(length, 'x'));
    },
  });
  return { stream, pulled: () => pulled };
}
interface GeneratedOptions {
  tail?: Buffer;
  onRead?: (pulled: number) => void;
}

const bytesOf = (...parts: (Buffer | string)[]) => Readable.from([Buffer.concat(parts.map((p) => Buffer.from(p)))]);

interface TestServer {
  address: string;
  /** Connections accepted so far. */
  connections: number;
  /** Connections still open. */
  open: number;
  /** Closes the server and every connection still open. */
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1 that hands its `n`th connection (from 1) to `serve`. */
async function testServer(serve: (socket: net.Socket, n: number) => void): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    handle.connections += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    serve(socket, handle.connections);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const handle: TestServer = {
    address: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: 0,
    get open() {
      return sockets.size;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return handle;
}

/** Takes what the client sends on `socket` and says nothing until `until`, then closes it. */
function holdUntil(socket: net.Socket, until: Promise<void>): void {
  socket.resume();
  void until.then(() => socket.destroy());
}

/**
 * A server that speaks just enough of clamd's framing: it reads a command (an INSTREAM to its zero-length chunk), then
 * `respond` does what it will with the socket. A client that stops before its command's end is closed on.
 */
function fakeClamd(respond: (socket: net.Socket, command: string) => void): Promise<TestServer> {
  return testServer((socket) => {
    let pending = Buffer.alloc(0);
    let command: string | undefined;
    let skipping = 0;
    socket.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        if (command === undefined) {
          const end = pending.indexOf(0);
          if (end === -1) return;
          command = pending.subarray(1, end).toString('latin1');
          pending = pending.subarray(end + 1);
          if (command !== 'INSTREAM') return respond(socket, command);
        } else if (skipping > 0) {
          const skipped = Math.min(skipping, pending.length);
          skipping -= skipped;
          pending = pending.subarray(skipped);
          if (skipping > 0) return;
        } else {
          if (pending.length < 4) return;
          skipping = pending.readUInt32BE(0);
          pending = pending.subarray(4);
          if (skipping === 0) return respond(socket, command);
        }
      }
    });
    socket.on('end', () => socket.destroy());
  });
}

/** Allows this process to collect its garbage on demand (node's --expose-gc, set at run time). */
function garbageCollector(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

describe('clamdScanner (core/scanner/clamd.ts)', function () {
  this.timeout(30_000);
  const scanners: Scanner[] = [];
  /** A scanner closed after the test. */
  const scannerOf = (address: string, timeoutMs = PATIENT_MS, engineCacheMs?: number) => {
    const scanner = clamdScanner(address, { timeoutMs, engineCacheMs });
    scanners.push(scanner);
    return scanner;
  };
  afterEach(() => {
    for (const scanner of scanners.splice(0)) scanner.close();
  });

  describe('against clamd', () => {
    let clamd: Clamd;
    before(async function () {
      requireClamd(this);
      clamd = await startClamd();
    });
    afterEach(() => {
      // a test that froze or killed clamd and failed before it thawed or started it again
      clamd?.kill('SIGCONT');
    });
    after(async () => {
      await clamd?.destroy();
    });

    for (const transport of ['TCP', 'the unix socket'] as const) {
      describe(`over ${transport}`, () => {
        const scanner = () => scannerOf(transport === 'TCP' ? clamd.address : clamd.socketPath);

        it('calls clean bytes clean, consuming and destroying the stream', async () => {
          const source = bytesOf(png(32, 32), 'nothing to see here\n');
          expect(await scanner().scan(source)).to.deep.equal({ status: 'clean' });
          expect([source.readableEnded, source.destroyed]).to.deep.equal([true, true]);
        });

        it("calls EICAR infected, with clamd's name for the signature", async () => {
          expect(await scanner().scan(bytesOf('a harmless prefix, then ', EICAR))).to.deep.equal({
            status: 'infected',
            signature: reportedName(EICAR_SIGNATURE),
          });
        });

        it('finds a signature in a file inside a zip', async () => {
          const archive = zip([
            { name: 'clean.txt', content: 'nothing here\n' },
            { name: 'inner/readme.txt', content: ZIP_MARKER, deflate: true },
          ]);
          expect(await scanner().scan(bytesOf(archive))).to.deep.equal({
            status: 'infected',
            signature: reportedName(ZIP_MARKER_SIGNATURE),
          });
        });

        it('answers ping() and engine()', async () => {
          await scanner().ping();
          expect(await scanner().engine()).to.match(/^ClamAV \d+\.\d+/);
        });
      });
    }

    describe('streams', () => {
      it('gives each of several scans at once its own verdict', async () => {
        const scanner = scannerOf(clamd.address);
        const verdicts = await Promise.all(
          [EICAR, 'clean', ZIP_MARKER, 'clean again'].map((text) =>
            scanner.scan(bytesOf(Buffer.alloc(200 * KIB, 'x'), text)),
          ),
        );
        expect(verdicts).to.deep.equal([
          { status: 'infected', signature: reportedName(EICAR_SIGNATURE) },
          { status: 'clean' },
          { status: 'infected', signature: reportedName(ZIP_MARKER_SIGNATURE) },
          { status: 'clean' },
        ]);
      });

      it('finds a signature the source hands over one byte at a time', async () => {
        const source = Readable.from(
          [...Buffer.from(`one byte at a time: ${EICAR}`)].map((byte) => Buffer.from([byte])),
        );
        expect(await scannerOf(clamd.address).scan(source)).to.deep.equal({
          status: 'infected',
          signature: reportedName(EICAR_SIGNATURE),
        });
      });

      it('finds a signature across the edge of two chunks when it splits a large one', async () => {
        // one 3 MiB chunk from the source, EICAR across the edge of the client's 1 MiB buffers (its INSTREAM chunks)
        const bytes = Buffer.alloc(3 * MIB, 'x');
        bytes.write(EICAR, MIB - 10, 'latin1');
        expect(await scannerOf(clamd.address).scan(Readable.from([bytes]))).to.deep.equal({
          status: 'infected',
          signature: reportedName(EICAR_SIGNATURE),
        });
      });

      it('takes a stream of strings as their bytes', async () => {
        const source = Readable.from(['text before ', EICAR, ' and after']);
        expect(await scannerOf(clamd.address).scan(source)).to.include({ status: 'infected' });
      });

      it('calls an empty stream clean', async () => {
        expect(await scannerOf(clamd.address).scan(Readable.from([]))).to.deep.equal({ status: 'clean' });
      });
    });

    describe("clamd's limits", () => {
      let streamLimited: Clamd;
      let sizeLimited: Clamd;
      const STREAM_MAX = 256 * KIB;
      before(async () => {
        [streamLimited, sizeLimited] = await Promise.all([
          startClamd({ streamMaxLength: STREAM_MAX }),
          startClamd({ maxFileSize: 128 * KIB, maxScanSize: 256 * KIB }),
        ]);
      });
      after(async () => {
        await Promise.all([streamLimited?.destroy(), sizeLimited?.destroy()]);
      });

      it('calls a stream of exactly StreamMaxLength bytes clean', async () => {
        const scan = scannerOf(streamLimited.address).scan(bytesOf(Buffer.alloc(STREAM_MAX, 'x')));
        expect(await scan).to.deep.equal({ status: 'clean' });
      });

      it('calls a stream one byte over StreamMaxLength unscannable, not clean', async () => {
        const scan = scannerOf(streamLimited.address).scan(bytesOf(Buffer.alloc(STREAM_MAX + 1, 'x')));
        expect(await scan).to.deep.include({ status: 'unscannable' });
      });

      it('calls a stream far over StreamMaxLength unscannable, having read little of it', async () => {
        const { stream, pulled } = generated(1024 * MIB);
        expect(await scannerOf(streamLimited.address).scan(stream)).to.deep.include({ status: 'unscannable' });
        expect(pulled()).to.be.below(32 * MIB);
        expect(stream.destroyed).to.equal(true);
      });

      it('calls a file past MaxFileSize unscannable (Heuristics.Limits.Exceeded), never clean', async () => {
        const verdict = await scannerOf(sizeLimited.address).scan(bytesOf(Buffer.alloc(200 * KIB, 'x')));
        expect(verdict).to.include({ status: 'unscannable' });
        expect(verdict)
          .to.have.property('reason')
          .that.matches(/^Heuristics\.Limits\.Exceeded\.MaxFileSize/);
      });

      it('calls an archive past MaxScanSize unscannable (Heuristics.Limits.Exceeded), never clean', async () => {
        const archive = zip(
          [1, 2, 3].map((n) => ({ name: `part${n}.bin`, content: Buffer.alloc(100 * KIB, n), deflate: true })),
        );
        expect(archive.length).to.be.below(128 * KIB); // the archive itself is within MaxFileSize
        const verdict = await scannerOf(sizeLimited.address).scan(bytesOf(archive));
        expect(verdict).to.include({ status: 'unscannable' });
        expect(verdict)
          .to.have.property('reason')
          .that.matches(/^Heuristics\.Limits\.Exceeded\.MaxScanSize/);
      });
    });

    describe('memory', () => {
      it('reads no faster than clamd takes the bytes: frozen, it gets a bounded amount, then the timeout', async () => {
        clamd.kill('SIGSTOP');
        try {
          const { stream, pulled } = generated(1024 * MIB);
          const err = await rejection(scannerOf(clamd.address, IMPATIENT_MS).scan(stream));
          expect(err).to.be.instanceOf(ScannerUnavailableError);
          // what the kernel's socket buffers and the streams' own take, not the gigabyte
          expect(pulled()).to.be.below(32 * MIB);
          expect(stream.destroyed).to.equal(true);
        } finally {
          clamd.kill('SIGCONT');
        }
        await scannerOf(clamd.address).ping();
      });

      it('scans 64 MiB to a verdict without holding them: RSS grows by far less than that', async () => {
        // A correct client's garbage (each chunk, once sent) would pile up to V8's external-memory threshold (64 MiB)
        // before a collection: collect as the bytes go, so that what is measured is what is held, not what is not freed
        // yet. The growth is taken from the lowest point, as what an earlier test let go may still be on its way out;
        // and the live buffers are measured as well as RSS, which misses a client that holds what the allocator kept.
        const collect = garbageCollector();
        const low = { rss: Infinity, arrayBuffers: Infinity };
        const peak = { rss: 0, arrayBuffers: 0 };
        const measure = () => {
          collect();
          const { rss, arrayBuffers } = process.memoryUsage();
          Object.assign(low, { rss: Math.min(low.rss, rss), arrayBuffers: Math.min(low.arrayBuffers, arrayBuffers) });
          Object.assign(peak, {
            rss: Math.max(peak.rss, rss),
            arrayBuffers: Math.max(peak.arrayBuffers, arrayBuffers),
          });
        };
        measure();
        const { stream } = generated(64 * MIB, {
          tail: Buffer.from(EICAR),
          onRead: (pulled) => {
            if (pulled % (8 * MIB) === 0) measure();
          },
        });
        try {
          // EICAR after the 64 MiB: found only if every byte got there
          expect(await scannerOf(clamd.address).scan(stream)).to.deep.equal({
            status: 'infected',
            signature: reportedName(EICAR_SIGNATURE),
          });
        } finally {
          measure();
        }
        expect({
          rss: Math.round((peak.rss - low.rss) / MIB),
          buffers: Math.round((peak.arrayBuffers - low.arrayBuffers) / MIB),
        }).to.satisfy(({ rss, buffers }: { rss: number; buffers: number }) => rss < 32 && buffers < 32);
      });
    });

    describe('the inactivity timeout', () => {
      it('gives no verdict but ScannerUnavailableError when clamd freezes once it has all the bytes', async () => {
        clamd.kill('SIGSTOP');
        try {
          const source = bytesOf('all of it, then silence ', EICAR);
          const err = await rejection(scannerOf(clamd.address, IMPATIENT_MS).scan(source));
          expect(err).to.be.instanceOf(ScannerUnavailableError);
          expect(source.destroyed).to.equal(true);
        } finally {
          clamd.kill('SIGCONT');
        }
      });

      it('leaves out the time it waits for the source: a store that stalls longer than that still gets its verdict', async () => {
        const timeoutMs = 1_000;
        let reads = 0;
        const source = new Readable({
          read() {
            reads += 1;
            if (reads === 1) this.push(Buffer.alloc(64 * KIB, 'x'));
            // the store stalls for longer than the timeout, clamd having taken all it was given
            else if (reads === 2) setTimeout(() => this.push(Buffer.from(EICAR)), 1.5 * timeoutMs);
            else this.push(null);
          },
        });
        expect(await scannerOf(clamd.address, timeoutMs).scan(source)).to.include({ status: 'infected' });
      });
    });

    describe('when clamd fails', () => {
      it('gives no verdict but ScannerUnavailableError when clamd dies in the middle of a stream', async () => {
        // Frozen, clamd lets the stream fill the socket buffers; then it dies with the stream half sent.
        clamd.kill('SIGSTOP');
        try {
          const { stream, pulled } = generated(64 * MIB, { tail: Buffer.from(EICAR) });
          const scan = scannerOf(clamd.address).scan(stream);
          await eventually(() => pulled() > 256 * KIB, 'the first bytes sent');
          clamd.kill('SIGKILL');
          const err = await rejection(scan);
          expect(err).to.be.instanceOf(ScannerUnavailableError);
          expect(pulled()).to.be.below(64 * MIB);
          expect(stream.destroyed).to.equal(true);
        } finally {
          clamd.kill('SIGKILL');
          await clamd.exited();
          await clamd.start();
        }
      });

      it('rejects scan, ping and engine with ScannerUnavailableError when clamd is down', async () => {
        await clamd.stop();
        try {
          for (const address of [clamd.address, clamd.socketPath]) {
            const scanner = scannerOf(address);
            const source = bytesOf('no one to scan this');
            for (const call of [() => scanner.scan(source), () => scanner.ping(), () => scanner.engine()])
              expect(await rejection(call())).to.be.instanceOf(ScannerUnavailableError);
            expect(source.destroyed).to.equal(true);
          }
        } finally {
          await clamd.start();
        }
      });

      it("rejects with the source's own error when the source fails", async () => {
        const failure = new Error('the store went away');
        let sent = 0;
        const source = new Readable({
          read() {
            sent += 1;
            if (sent <= 3) this.push(Buffer.alloc(16 * KIB, 'x'));
            else this.destroy(failure);
          },
        });
        const err = await rejection(scannerOf(clamd.address).scan(source));
        expect(err).to.equal(failure);
        expect(err).not.to.be.instanceOf(ScannerUnavailableError);
      });

      it('rejects with ERR_STREAM_PREMATURE_CLOSE when the source closes before its end', async () => {
        let sent = 0;
        const source = new Readable({
          read() {
            sent += 1;
            if (sent <= 3) this.push(Buffer.alloc(16 * KIB, 'x'));
            else this.destroy();
          },
        });
        const err = await rejection(scannerOf(clamd.address).scan(source));
        expect(err.code).to.equal('ERR_STREAM_PREMATURE_CLOSE');
        expect(err).not.to.be.instanceOf(ScannerUnavailableError);
      });

      it('gives verdicts again once clamd is back', async () => {
        expect(await scannerOf(clamd.address).scan(bytesOf(EICAR))).to.include({ status: 'infected' });
      });
    });
  });

  describe('a ByteSource', () => {
    it("sends a ByteSource's bytes exactly as read, into a few buffers of the client's own, each reused once written", async () => {
      // A slow server that checks the framing and hashes what each chunk carries; the source fills what it is given with
      // bytes that differ at every offset, in reads of varying lengths: a buffer reused before the socket wrote it
      // would send some bytes twice and others never.
      const received = createHash('sha256');
      const server = await testServer((socket) => {
        let header = Buffer.alloc(0);
        let command = true;
        let left = 0;
        socket.on('data', (data: Buffer) => {
          // read slowly, so that the client's writes wait in its socket, holding their buffers
          socket.pause();
          setTimeout(() => socket.resume(), 1);
          let at = 0;
          if (command) {
            at = data.indexOf(0) + 1;
            command = false;
          }
          while (at < data.length) {
            if (left > 0) {
              const piece = data.subarray(at, at + left);
              received.update(piece);
              left -= piece.length;
              at += piece.length;
              continue;
            }
            const part = data.subarray(at, at + 4 - header.length);
            header = Buffer.concat([header, part]);
            at += part.length;
            if (header.length < 4) return;
            left = header.readUInt32BE(0);
            header = Buffer.alloc(0);
            if (left === 0) socket.end('stream: OK\0');
          }
        });
      });
      const SIZE = 24 * MIB;
      const sent = createHash('sha256');
      const buffers = new Set<ArrayBufferLike>();
      let offset = 0;
      let reads = 0;
      const source: ByteSource = {
        async read(into) {
          await sleep(0);
          buffers.add(into.buffer);
          const length = Math.min(SIZE - offset, into.length - (reads++ % 7) * 1000);
          for (let n = 0; n < length; n++) into[n] = (offset + n) % 251;
          sent.update(into.subarray(0, length));
          offset += length;
          return length;
        },
      };
      try {
        expect(await scannerOf(server.address).scan(source)).to.deep.equal({ status: 'clean' });
        expect(received.digest('hex')).to.equal(sent.digest('hex'));
        expect(reads).to.be.above(24);
        expect(buffers.size).to.be.within(1, 3);
      } finally {
        await server.close();
      }
    });
  });

  describe('against a server that does not answer as clamd does', () => {
    const fakes: TestServer[] = [];
    const fake = async (respond: (socket: net.Socket, command: string) => void) => {
      const server = await fakeClamd(respond);
      fakes.push(server);
      return server;
    };
    afterEach(async () => {
      await Promise.all(fakes.splice(0).map((server) => server.close()));
    });

    it('rejects an answer to INSTREAM that is no verdict, and closes its connection', async () => {
      const server = await fake((socket) => socket.write('stream: something weird\0'));
      const err = await rejection(scannerOf(server.address).scan(bytesOf('hello')));
      expect(err).to.be.instanceOf(ScannerUnavailableError);
      await eventually(() => server.open === 0, 'every connection closed');
    });

    it('rejects an answer of more than 1024 bytes that does not end', async () => {
      const server = await fake((socket) => socket.write(Buffer.alloc(4 * KIB, 'A')));
      for (const call of [(s: Scanner) => s.scan(bytesOf('hello')), (s: Scanner) => s.ping()])
        expect(await rejection(call(scannerOf(server.address)))).to.be.instanceOf(ScannerUnavailableError);
      await eventually(() => server.open === 0, 'every connection closed');
    });

    it('stops reading a server that sends more than any answer, rather than holding what it sends', async () => {
      // The flood is capped, and the client's second connection (it asks about the size after a lost answer) is held
      // until the first is closed or has had it all: what got sent then tells, whatever the machine's speed.
      const CAP = 64 * MIB;
      let sent = 0;
      const flooded = Promise.withResolvers<void>();
      const flooding = await testServer((socket, n) => {
        if (n > 1) return holdUntil(socket, flooded.promise);
        socket.once('close', () => flooded.resolve());
        const chunk = Buffer.alloc(64 * KIB, 'A');
        const flood = () => {
          while (sent < CAP && !socket.destroyed) {
            sent += chunk.length;
            if (!socket.write(chunk)) return void socket.once('drain', flood);
          }
          flooded.resolve();
        };
        socket.once('data', flood);
      });
      try {
        const err = await rejection(scannerOf(flooding.address).scan(bytesOf('hello')));
        expect(err).to.be.instanceOf(ScannerUnavailableError);
        expect(sent).to.be.below(CAP / 2);
      } finally {
        await flooding.close();
      }
    });

    it('rejects when the server closes without an answer', async () => {
      const server = await fake((socket) => socket.destroy());
      const err = await rejection(scannerOf(server.address).scan(bytesOf('hello')));
      expect(err).to.be.instanceOf(ScannerUnavailableError);
    });

    it('rejects when the server closes in the middle of its answer', async () => {
      const server = await fake((socket) => socket.end('stream: OK'));
      const err = await rejection(scannerOf(server.address).scan(bytesOf('hello')));
      expect(err).to.be.instanceOf(ScannerUnavailableError);
    });

    it('reads a FOUND answer that comes in several packets', async () => {
      const server = await fake((socket) => {
        socket.setNoDelay(true);
        void (async () => {
          for (const part of ['stream: Fake.', 'Split.Signature', ' FO', 'UND\0']) {
            socket.write(part);
            await sleep(20);
          }
        })();
      });
      expect(await scannerOf(server.address).scan(bytesOf('hello'))).to.deep.equal({
        status: 'infected',
        signature: 'Fake.Split.Signature',
      });
    });

    it("tells StreamMaxLength from a lost connection when clamd's answer is lost with it", async () => {
      // clamd closes at its limit with bytes still on their way, and the reset can take its answer with it: then the
      // client declares the size alone on a second connection, and clamd's answer to that says whether it is over
      const limit = 100 * KIB;
      const declared: number[] = [];
      const cutting = await testServer((socket, n) => {
        let received = Buffer.alloc(0);
        socket.on('data', (data: Buffer) => {
          received = Buffer.concat([received, data]);
          if (n === 1 && received.length > limit) socket.resetAndDestroy();
          else if (n === 2 && received.length >= 14) {
            declared.push(received.readUInt32BE(10));
            socket.end(`${declared[0]! > limit ? 'INSTREAM size limit exceeded. ERROR' : 'stream: OK'}\0`);
          }
        });
      });
      try {
        const { stream } = generated(MIB);
        expect(await scannerOf(cutting.address).scan(stream)).to.deep.include({ status: 'unscannable' });
        expect(declared).to.have.length(1);
        expect(declared[0]).to.be.above(limit);
      } finally {
        await cutting.close();
      }
    });

    it('reads no more of the source once the connection is lost, while it asks about the size', async () => {
      // A source that gives its bytes a tick apart, as a store does; the second connection (the question about the
      // size) is held until the source has been read to its end, or the client gives up on that question.
      const CAP = 16 * MIB;
      const readToEnd = Promise.withResolvers<void>();
      let pulled = 0;
      const source = new Readable({
        read() {
          setImmediate(() => {
            pulled += 4 * KIB;
            this.push(pulled > CAP ? null : Buffer.alloc(4 * KIB, 'x'));
            if (pulled > CAP) readToEnd.resolve();
          });
        },
      });
      const cutting = await testServer((socket, n) => {
        if (n > 1) return holdUntil(socket, readToEnd.promise);
        let received = 0;
        socket.on('data', (data: Buffer) => {
          received += data.length;
          if (received > 256 * KIB) socket.resetAndDestroy();
        });
      });
      try {
        const err = await rejection(scannerOf(cutting.address, IMPATIENT_MS).scan(source));
        expect(err).to.be.instanceOf(ScannerUnavailableError);
        expect(pulled).to.be.below(CAP / 2);
        expect(source.destroyed).to.equal(true);
      } finally {
        readToEnd.resolve();
        await cutting.close();
      }
    });

    it('rejects ping() when the answer is not PONG, and engine() when it is not a ClamAV version', async () => {
      const server = await fake((socket, command) => socket.write(`${command === 'PING' ? 'PANG' : 'NotClamAV 1'}\0`));
      const scanner = scannerOf(server.address);
      expect(await rejection(scanner.ping())).to.be.instanceOf(ScannerUnavailableError);
      expect(await rejection(scanner.engine())).to.be.instanceOf(ScannerUnavailableError);
    });
  });

  describe('engine()', () => {
    let server: TestServer;
    let version = 'ClamAV 1.4.6/27452/Mon Dec  7 08:24:01 2026';
    before(async () => {
      server = await fakeClamd((socket, command) => socket.write(command === 'VERSION' ? `${version}\0` : 'ERROR\0'));
    });
    after(() => server?.close());

    it('asks clamd once within engineCacheMs, concurrent calls included', async () => {
      const scanner = scannerOf(server.address);
      const before = server.connections;
      const answers = await Promise.all([scanner.engine(), scanner.engine()]);
      expect(await scanner.engine()).to.equal(version);
      expect(answers).to.deep.equal([version, version]);
      expect(server.connections - before).to.equal(1);
    });

    it('keeps no failure: the next call asks again', async () => {
      const scanner = scannerOf(server.address);
      const before = server.connections;
      version = 'something else';
      try {
        expect(await rejection(scanner.engine())).to.be.instanceOf(ScannerUnavailableError);
      } finally {
        version = 'ClamAV 1.4.6/27452/Mon Dec  7 08:24:01 2026';
      }
      expect(await scanner.engine()).to.equal(version);
      expect(server.connections - before).to.equal(2);
    });

    it('asks again once engineCacheMs has passed, and answers what clamd says then', async () => {
      const scanner = scannerOf(server.address, PATIENT_MS, 50);
      const before = server.connections;
      const first = await scanner.engine();
      await sleep(100);
      version = 'ClamAV 1.4.7/27453/Tue Dec  8 08:24:01 2026';
      expect(await scanner.engine()).to.equal(version);
      expect(first).not.to.equal(version);
      expect(server.connections - before).to.equal(2);
    });
  });

  describe('close()', () => {
    it('rejects a scan in flight with ScannerUnavailableError', async () => {
      const silent = await fakeClamd(() => {});
      try {
        const scanner = scannerOf(silent.address);
        const source = bytesOf('waiting for an answer that never comes');
        const scan = scanner.scan(source);
        await eventually(() => silent.open === 1, 'the connection');
        scanner.close();
        expect(await rejection(scan)).to.be.instanceOf(ScannerUnavailableError);
        expect(source.destroyed).to.equal(true);
        await eventually(() => silent.open === 0, 'the connection closed');
      } finally {
        await silent.close();
      }
    });

    it('rejects every call after it, a cached engine() included, and connects no more', async () => {
      const answers: Record<string, string> = { INSTREAM: 'stream: OK', PING: 'PONG', VERSION: 'ClamAV 1.4.6' };
      const server = await fakeClamd((socket, command) => socket.write(`${answers[command]}\0`));
      try {
        const scanner = scannerOf(server.address);
        await scanner.engine();
        const before = server.connections;
        scanner.close();
        const source = bytesOf('too late');
        for (const call of [() => scanner.scan(source), () => scanner.ping(), () => scanner.engine()])
          expect(await rejection(call())).to.be.instanceOf(ScannerUnavailableError);
        expect(source.destroyed).to.equal(true);
        expect(server.connections).to.equal(before);
      } finally {
        await server.close();
      }
    });
  });

  describe('addresses and options', () => {
    const options = { timeoutMs: 1_000 };

    for (const address of [
      'localhost:3310',
      'tcp://clamd',
      'tcp://clamd:0',
      'tcp://clamd:99999',
      'tcp://clamd:3310/x',
      'tcp://clamd:3310?x=1',
      'tcp://user@clamd:3310',
      'udp://clamd:3310',
      'clamd.sock',
      './run/clamd.sock',
      '',
    ])
      it(`refuses "${address}"`, () => {
        expect(() => clamdScanner(address, options)).to.throw(/tcp:\/\/host:port or a unix socket's absolute path/);
      });

    it('takes tcp://host:port, an IPv6 host, and an absolute socket path', () => {
      for (const address of ['tcp://clamd.example:3310', 'tcp://127.0.0.1:1', 'tcp://[::1]:65535', '/run/clamd.ctl'])
        clamdScanner(address, options).close();
    });

    it('refuses a timeoutMs that is not positive', () => {
      for (const timeoutMs of [0, -1, Number.NaN])
        expect(() => clamdScanner('tcp://clamd:3310', { timeoutMs })).to.throw(/timeoutMs must be positive/);
    });
  });
});
