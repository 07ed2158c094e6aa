/**
 * The provider's HTTP(S) server before any request handler is attached: plain http, or
 * https with --tls-cert/--tls-key (optionally mutual TLS: --tls-client-ca), a source-address
 * filter (--allow-peer, standing in for an egress firewall that only lets a proxy through),
 * and the set of open sockets, which a clean shutdown closes.
 *
 * Security caveat: with --tls-client-ca a connection without a client certificate from that
 * CA fails in the handshake; with --allow-peer other peers are closed before any byte is read.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

import { fail } from './options.mjs';

function readPem(file, what) {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    return fail(`cannot read ${what} from ${file}: ${err.message}`);
  }
}

/** The server (not listening yet), its URL scheme, and the live set of its sockets. */
export function createHttpServer({ tlsCert, tlsKey, tlsClientCa, allowedPeers, verbose }) {
  if (Boolean(tlsCert) !== Boolean(tlsKey)) fail('--tls-cert and --tls-key go together');
  if (tlsClientCa && !tlsCert) fail('--tls-client-ca needs --tls-cert and --tls-key');
  const scheme = tlsCert ? 'https' : 'http';

  const httpServer = tlsCert
    ? https.createServer({
      cert: readPem(tlsCert, 'the TLS certificate'),
      key: readPem(tlsKey, 'the TLS key'),
      ...(tlsClientCa
        ? { requestCert: true, rejectUnauthorized: true, ca: readPem(tlsClientCa, 'the client CA') }
        : {}),
    })
    : http.createServer();
  if (tlsCert) {
    httpServer.on('tlsClientError', (err, socket) => {
      if (verbose) process.stderr.write(`devprovider: TLS handshake failed from ${socket.remoteAddress}: ${err.message}\n`);
    });
  }
  const sockets = new Set();
  httpServer.on('connection', (socket) => {
    if (allowedPeers.size && !allowedPeers.has(String(socket.remoteAddress).replace(/^::ffff:/, ''))) {
      if (verbose) process.stderr.write(`devprovider: refused a connection from ${socket.remoteAddress}\n`);
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return { httpServer, scheme, sockets };
}
