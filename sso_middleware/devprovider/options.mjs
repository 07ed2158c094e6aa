/**
 * The devprovider's command line: its options and their environment variables (the list,
 * with defaults, is the header of server.mjs, which --help prints), and the helpers every
 * module uses to refuse bad input. fail() prints one "devprovider: ..." line to stderr and
 * exits with status 2 — before the ready line, so the parent process sees the reason.
 *
 * Security caveat: the provider must stay on loopback (it knows fixed passwords and allows
 * dynamic registration); isLoopbackHost is the one rule for that, used for --host, for the
 * CORS origins it answers and for the outgoing requests it lets reach loopback.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { parseArgs } from 'node:util';

export function fail(message) {
  process.stderr.write(`devprovider: ${message}\n`);
  process.exit(2);
}

/** True for 127.x.y.z, ::1 and localhost: the only addresses the provider binds or trusts. */
export function isLoopbackHost(host) {
  if (host === 'localhost' || host === '::1') return true;
  return net.isIPv4(host) && host.startsWith('127.');
}

export function readJson(file, what) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`cannot read ${what} from ${file}: ${err.message}`);
  }
}

/**
 * The options of this process (argv, then the environment, then the default), checked.
 * --help prints the header comment of server.mjs and exits; a bad value fails.
 */
export function readOptions() {
  const { values: args } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      issuer: { type: 'string' },
      keys: { type: 'string' },
      'previous-keys': { type: 'string' },
      'write-keys': { type: 'string' },
      clients: { type: 'string' },
      resources: { type: 'string' },
      'registration-token': { type: 'string' },
      'access-token-ttl': { type: 'string' },
      'id-token-ttl': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-client-ca': { type: 'string' },
      'require-pushed-authorization': { type: 'boolean', default: false },
      'allow-peer': { type: 'string', multiple: true },
      'watch-stdin': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });

  if (args.help) {
    const source = fs.readFileSync(new URL('./server.mjs', import.meta.url), 'utf8');
    process.stdout.write(`${source.slice(source.indexOf('/**'), source.indexOf('*/') + 2)}\n`);
    process.exit(0);
  }

  const env = process.env;

  function intOption(name, envName, fallback, { min = 0, max = 2 ** 31 } = {}) {
    const raw = args[name] ?? env[envName];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(String(raw))) fail(`--${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    const value = Number(raw);
    if (value < min || value > max) fail(`--${name} must be between ${min} and ${max}`);
    return value;
  }

  const options = {
    port: intOption('port', 'DEVPROVIDER_PORT', 0, { max: 65535 }),
    accessTokenTtl: intOption('access-token-ttl', 'DEVPROVIDER_ACCESS_TOKEN_TTL', 3600, { min: 1 }),
    idTokenTtl: intOption('id-token-ttl', 'DEVPROVIDER_ID_TOKEN_TTL', 3600, { min: 1 }),
    host: args.host ?? env.DEVPROVIDER_HOST ?? '127.0.0.1',
    issuerTemplate: args.issuer ?? env.DEVPROVIDER_ISSUER,
    keysFile: args.keys ?? env.DEVPROVIDER_KEYS,
    previousKeysFile: args['previous-keys'],
    writeKeysFile: args['write-keys'],
    clientsFile: args.clients ?? env.DEVPROVIDER_CLIENTS,
    // checked by resources.mjs (inline JSON or a file name)
    resourcesOption: args.resources ?? env.DEVPROVIDER_RESOURCES,
    registrationToken: args['registration-token'] ?? env.DEVPROVIDER_REGISTRATION_TOKEN,
    verbose: args.verbose,
    requirePar: args['require-pushed-authorization'] || env.DEVPROVIDER_REQUIRE_PAR === '1',
    // checked (they go together) by listener.mjs, which reads the files
    tlsCert: args['tls-cert'] ?? env.DEVPROVIDER_TLS_CERT,
    tlsKey: args['tls-key'] ?? env.DEVPROVIDER_TLS_KEY,
    tlsClientCa: args['tls-client-ca'] ?? env.DEVPROVIDER_TLS_CLIENT_CA,
    allowedPeers: new Set(args['allow-peer'] ?? (env.DEVPROVIDER_ALLOW_PEERS || '').split(',').filter(Boolean)),
    watchStdin: args['watch-stdin'],
  };
  if (!isLoopbackHost(options.host)) fail(`--host must be a loopback address (127.x.y.z, ::1, localhost), got ${options.host}`);
  return options;
}
