/**
 * devprovider — a development OpenID Provider for sso_middleware's tests and local demo.
 *
 * Built on the npm package `oidc-provider` (v9). It stands in for an Auth0 tenant: it
 * accepts Auth0's `connection` and `audience` authorize parameters, treats every client as
 * first-party (no consent screen, so `prompt=none` works across clients once the user has
 * a provider session), and records what relying parties send on the wire so tests can
 * assert it. NOT FOR PRODUCTION: it listens on a loopback address only, keeps everything in
 * memory, knows two fixed users and allows dynamic client registration.
 *
 * Usage:
 *   npm ci && node server.mjs [options]
 *
 * Options (each also settable through the environment variable in brackets):
 *   --port N                  port to listen on; 0 = pick a free one [DEVPROVIDER_PORT] (default 0)
 *   --host ADDR               loopback address to bind: 127.x.y.z, ::1 or localhost
 *                             [DEVPROVIDER_HOST] (default 127.0.0.1)
 *   --issuer URL              issuer identifier; "{port}" is replaced by the bound port
 *                             [DEVPROVIDER_ISSUER] (default http://<host>:<port>). Must have no
 *                             path other than "/", e.g. "http://127.0.0.1:{port}/" gives an
 *                             Auth0-style issuer with a trailing slash.
 *   --keys FILE               signing keys: a JWKS JSON with private keys; the first key signs
 *                             [DEVPROVIDER_KEYS] (default: a fresh RS256 key with a random kid)
 *   --previous-keys FILE      a JWKS (with private keys) still published for verification after
 *                             a rotation; the first key of --keys (or the fresh key) signs
 *   --write-keys FILE         write the whole JWKS (private keys!) to FILE at start
 *   --clients FILE            JSON list of oidc-provider client metadata replacing the default
 *                             clients [DEVPROVIDER_CLIENTS]
 *   --registration-token TOK  initial access token required for dynamic client registration
 *                             (Authorization: Bearer TOK) [DEVPROVIDER_REGISTRATION_TOKEN]
 *                             (default: open registration)
 *   --access-token-ttl SECS   access token lifetime [DEVPROVIDER_ACCESS_TOKEN_TTL] (default 3600)
 *   --id-token-ttl SECS       ID token lifetime [DEVPROVIDER_ID_TOKEN_TTL] (default 3600)
 *   --tls-cert FILE           serve https (Node's https server) with this PEM certificate
 *                             chain [DEVPROVIDER_TLS_CERT]; needs --tls-key. The default issuer
 *                             becomes https://<host>:<port>
 *   --tls-key FILE            its PEM private key [DEVPROVIDER_TLS_KEY]
 *   --tls-client-ca FILE      mutual TLS: every connection must present a client certificate
 *                             issued by this PEM CA, else the handshake fails
 *                             [DEVPROVIDER_TLS_CLIENT_CA]; needs --tls-cert
 *   --require-pushed-authorization
 *                             announce require_pushed_authorization_requests in discovery and
 *                             refuse authorization requests that were not pushed (PAR, RFC 9126)
 *                             [DEVPROVIDER_REQUIRE_PAR=1]
 *   --allow-peer ADDR         accept TCP connections only from this source address (repeatable;
 *                             e.g. the outgoing address of a proxy, like an egress firewall);
 *                             others are closed at once [DEVPROVIDER_ALLOW_PEERS, comma-separated]
 *   --watch-stdin             exit when stdin reaches EOF (the parent process died)
 *   --verbose                 log every request to stderr
 *
 * Once listening it prints exactly one line to stdout:
 *   devprovider ready issuer=<issuer> port=<port> pid=<pid>
 * Everything else (warnings, logs) goes to stderr. SIGTERM / SIGINT shut it down cleanly.
 *
 * Auth0-like behaviour worth knowing:
 *   - every client is first-party: requested scopes/claims are granted without a consent
 *     screen, so prompt=none succeeds for any client while the user has a provider session
 *     (and answers error=login_required without one);
 *   - a refresh token is issued whenever the authorization request asked for offline_access
 *     and the client may use the refresh_token grant — also with prompt=none (plain
 *     oidc-provider drops offline_access unless prompt=consent); refresh tokens rotate;
 *   - ID tokens carry the profile/email claims (not only userinfo) and "connection" when the
 *     authorization request had one; PKCE (S256) is required for every client;
 *   - ID tokens always carry acr, amr and auth_time (the latter through require_auth_time,
 *     which every default, file-loaded and registered client gets unless it says otherwise);
 *   - ID tokens carry "sid" (like Auth0) unless the client's metadata says
 *     "devprovider_id_token_sid": false. Such a client's back-channel logout tokens still carry
 *     "sid" (with backchannel_logout_session_required) and "sub": the provider that omits sid
 *     from ID tokens but names it at logout, which plain oidc-provider cannot be made to be
 *     (its includeSid() ties both to backchannel_logout_session_required).
 *
 * Step-up authentication (acr_values, max_age):
 *   - ACR values (discovery: acr_values_supported): "urn:dev:loa:pwd" (password only, amr
 *     ["pwd"]) and "urn:dev:loa:mfa" (password plus one-time code, amr ["pwd", "otp"]);
 *   - acr_values is enforced (plain oidc-provider treats it as voluntary): when the request
 *     has acr_values and the provider session's acr is not one of them (exact match; an mfa
 *     session does not satisfy acr_values=urn:dev:loa:pwd), the login prompt is shown with
 *     the reason "acr_values_unmet" — with prompt=none the client gets error=login_required.
 *     The login that answers the prompt is accepted whatever level it reached (acr_values
 *     stay a request, as in OpenID Connect Core): the relying party must check the ID
 *     token's acr, e.g. after a password-only login the token says "urn:dev:loa:pwd";
 *   - max_age: a session authenticated longer ago than max_age seconds prompts for a login
 *     (reason "max_age"; prompt=none gives login_required); auth_time tells when it was.
 *
 * Default clients (confidential, grant types authorization_code + refresh_token):
 *   app1 / app1-secret  client_secret_basic  http://127.0.0.1:5001/auth/callback  logout -> http://127.0.0.1:5001/
 *   app2 / app2-secret  client_secret_post   http://127.0.0.1:5002/auth/callback  logout -> http://127.0.0.1:5002/
 * Users (sub = username): alice / alice-password, bob / bob-password. Like an Auth0 Action
 * adding roles, every ID token and userinfo response (scope openid) carries the namespaced
 * claim "https://example.com/roles": alice ["admin", "staff"], bob ["staff"].
 * One-time code (every user): 123456 — entered with the password it gives acr
 * "urn:dev:loa:mfa"; a wrong non-empty code fails the login. The login form shows the code
 * field prominently when acr_values asks for "urn:dev:loa:mfa", folded away otherwise.
 *
 * Auth0 Organizations (emulated):
 *   organizations  org_acme "acme" (display name "Acme"; member: alice),
 *                  org_globex "globex" (display name "Globex"; member: bob)
 *   invitations    inv_acme_bob (bob to org_acme), inv_globex_alice (alice to org_globex)
 *   - "organization" (an id org_..., or a name, case-insensitive) and "invitation" are accepted
 *     authorize parameters; an unknown organization or invitation, an invitation without its
 *     organization or for another one is refused (error=invalid_request), like Auth0;
 *   - the login form refuses a user who is not a member ("not a member of Acme"); signing in
 *     through an invitation makes the user a member (as accepting an Auth0 invitation does);
 *   - ID tokens of a sign-in through an organization carry org_id and org_name (Auth0 with
 *     "use organization names in the Authentication API"); a silent (prompt=none) sign-in of a
 *     provider session whose user is not a member gets no org claims (the relying party must
 *     refuse it).
 *
 * Endpoints (Auth0-like paths; always read them from discovery):
 *   /.well-known/openid-configuration, /authorize, /oauth/token, /userinfo,
 *   /.well-known/jwks.json, /oidc/logout (RP-initiated logout, confirmation form),
 *   /oidc/register (dynamic client registration), /oauth/revoke, /oauth/par (pushed
 *   authorization requests, RFC 9126)
 * Development-only routes:
 *   GET /interaction/:uid           the login form (records an "interaction" event)
 *   POST /interaction/:uid/login    form fields login, password, otp (optional one-time code)
 *   POST /interaction/:uid/abort    the user cancels: the client gets error=access_denied
 *   GET /_dev/events[?type=T]       JSON list of recorded events (oldest first)
 *   DELETE /_dev/events             clear the event list
 *
 * Recorded events (objects with "type" and "at" = epoch milliseconds):
 *   authorize               {client_id, method, params (every query/body parameter; for a pushed
 *                            request the pushed ones), sent (what the browser sent), pushed: bool,
 *                            status, error}
 *   pushed_authorization    {client_id, auth_method, params (secrets redacted), status, error}
 *   interaction             {uid, prompt: "login"|"consent", reasons, client_id, params}
 *                           reasons: why the prompt is needed, e.g. ["no_session"],
 *                           ["login_prompt"] (prompt=login), ["max_age"], ["acr_values_unmet"]
 *   login                   {uid, client_id, login, ok, otp: bool (a code was entered),
 *                            organization (id or null), invitation: bool (through one),
 *                            acr (the level reached; null when ok is false)}
 *   authorization_response  {client_id, error}   (error null on success)
 *   token                   {client_id, grant_type, auth_method, params (secrets redacted),
 *                            status, error, issued: [names of tokens returned]}
 *   userinfo                {status, auth: "header"|"body"|"query"|"none"}
 *   end_session             {client_id, method, params}
 *   end_session_confirm     {logout: bool}
 *   backchannel_logout      {client_id, sub, sid, ok, error}
 *   registration            {client_id, status, metadata (secrets redacted)}
 * auth_method is what the client actually used on the wire: "client_secret_basic" (an
 * Authorization: Basic header), "client_secret_post" (client_secret in the body),
 * "client_secret_jwt"/"private_key_jwt"/"client_assertion", "none", or "multiple".
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { parseArgs } from 'node:util';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

// ---------------------------------------------------------------------------------------
// configuration

function fail(message) {
  process.stderr.write(`devprovider: ${message}\n`);
  process.exit(2);
}

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    issuer: { type: 'string' },
    keys: { type: 'string' },
    'previous-keys': { type: 'string' },
    'write-keys': { type: 'string' },
    clients: { type: 'string' },
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
  const source = fs.readFileSync(new URL(import.meta.url), 'utf8');
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

const PORT = intOption('port', 'DEVPROVIDER_PORT', 0, { max: 65535 });
const ACCESS_TOKEN_TTL = intOption('access-token-ttl', 'DEVPROVIDER_ACCESS_TOKEN_TTL', 3600, { min: 1 });
const ID_TOKEN_TTL = intOption('id-token-ttl', 'DEVPROVIDER_ID_TOKEN_TTL', 3600, { min: 1 });
const HOST = args.host ?? env.DEVPROVIDER_HOST ?? '127.0.0.1';
const ISSUER_TEMPLATE = args.issuer ?? env.DEVPROVIDER_ISSUER;
const KEYS_FILE = args.keys ?? env.DEVPROVIDER_KEYS;
const CLIENTS_FILE = args.clients ?? env.DEVPROVIDER_CLIENTS;
const REGISTRATION_TOKEN = args['registration-token'] ?? env.DEVPROVIDER_REGISTRATION_TOKEN;
const VERBOSE = args.verbose;
const REQUIRE_PAR = args['require-pushed-authorization'] || env.DEVPROVIDER_REQUIRE_PAR === '1';

function isLoopbackHost(host) {
  if (host === 'localhost' || host === '::1') return true;
  return net.isIPv4(host) && host.startsWith('127.');
}

if (!isLoopbackHost(HOST)) fail(`--host must be a loopback address (127.x.y.z, ::1, localhost), got ${HOST}`);

function readJson(file, what) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`cannot read ${what} from ${file}: ${err.message}`);
  }
}

// --- signing keys ---

function generateSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `dev-${crypto.randomBytes(8).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

let jwks;
if (KEYS_FILE) {
  jwks = readJson(KEYS_FILE, 'signing keys');
  if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) fail(`${KEYS_FILE} must be a JWKS: {"keys": [...]}`);
  if (!jwks.keys.some((k) => k.d)) fail(`${KEYS_FILE} holds no private key ("d")`);
} else {
  jwks = { keys: [generateSigningKey()] };
}
if (args['previous-keys']) {
  const previous = readJson(args['previous-keys'], 'previous signing keys');
  if (!Array.isArray(previous?.keys)) fail(`${args['previous-keys']} must be a JWKS: {"keys": [...]}`);
  const seen = new Set(jwks.keys.map((k) => k.kid));
  jwks = { keys: [...jwks.keys, ...previous.keys.filter((k) => !seen.has(k.kid))] };
}
if (args['write-keys']) {
  fs.writeFileSync(args['write-keys'], `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
}

// --- clients ---

const FIRST_PARTY_DEFAULTS = {
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  // like Auth0: auth_time in every ID token, not only when max_age was requested
  require_auth_time: true,
};

const DEFAULT_CLIENTS = [
  {
    client_id: 'app1',
    client_secret: 'app1-secret',
    client_name: 'App 1',
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: ['http://127.0.0.1:5001/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:5001/'],
    ...FIRST_PARTY_DEFAULTS,
  },
  {
    client_id: 'app2',
    client_secret: 'app2-secret',
    client_name: 'App 2',
    token_endpoint_auth_method: 'client_secret_post',
    redirect_uris: ['http://127.0.0.1:5002/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:5002/'],
    ...FIRST_PARTY_DEFAULTS,
  },
];

// Registration responses carry these; they are not client metadata a static client may have.
const REGISTRATION_ONLY = ['registration_access_token', 'registration_client_uri', 'client_id_issued_at', 'client_secret_expires_at'];

let clients = DEFAULT_CLIENTS;
if (CLIENTS_FILE) {
  const loaded = readJson(CLIENTS_FILE, 'clients');
  if (!Array.isArray(loaded)) fail(`${CLIENTS_FILE} must hold a JSON list of client metadata objects`);
  clients = loaded.map((c) => {
    const copy = { ...FIRST_PARTY_DEFAULTS, ...c };
    for (const key of REGISTRATION_ONLY) delete copy[key];
    return copy;
  });
}

// --- users ---

// a namespaced custom claim, the way Auth0 Actions add roles to tokens
const ROLES_CLAIM = 'https://example.com/roles';

const USERS = {
  alice: {
    password: 'alice-password',
    claims: {
      name: 'Alice Example',
      given_name: 'Alice',
      family_name: 'Example',
      nickname: 'alice',
      preferred_username: 'alice',
      email: 'alice@example.com',
      email_verified: true,
      [ROLES_CLAIM]: ['admin', 'staff'],
    },
  },
  bob: {
    password: 'bob-password',
    claims: {
      name: 'Bob Example',
      given_name: 'Bob',
      family_name: 'Example',
      nickname: 'bob',
      preferred_username: 'bob',
      email: 'bob@example.com',
      email_verified: true,
      [ROLES_CLAIM]: ['staff'],
    },
  },
};

// --- Auth0 Organizations (emulated) ---

const ORGANIZATIONS = {
  org_acme: { name: 'acme', displayName: 'Acme', members: new Set(['alice']) },
  org_globex: { name: 'globex', displayName: 'Globex', members: new Set(['bob']) },
};
const INVITATIONS = { inv_acme_bob: 'org_acme', inv_globex_alice: 'org_globex' };

/** The organization id an "organization" parameter names (an id, or a name compared case-insensitively). */
function findOrganization(value) {
  if (typeof value !== 'string' || !value) return undefined;
  if (Object.hasOwn(ORGANIZATIONS, value)) return value;
  return Object.keys(ORGANIZATIONS).find((id) => ORGANIZATIONS[id].name === value.toLowerCase());
}

/** Authorize parameter checks, like Auth0's: unknown organizations and mismatched invitations are refused. */
const ORGANIZATION_PARAMS = {
  organization(ctx, value) {
    if (value !== undefined && !findOrganization(value)) {
      throw new errors.InvalidRequest('parameter organization is invalid: no such organization');
    }
  },
  invitation(ctx, value) {
    if (value === undefined) return;
    const org = Object.hasOwn(INVITATIONS, value) ? INVITATIONS[value] : undefined;
    if (!org) throw new errors.InvalidRequest('parameter invitation is invalid: no such invitation');
    if (findOrganization(ctx.oidc.params.organization) !== org) {
      throw new errors.InvalidRequest('parameter invitation is invalid: it is for another organization');
    }
  },
};

function sameSecret(expected, given) {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function checkPassword(login, password) {
  const user = Object.hasOwn(USERS, login) ? USERS[login] : undefined;
  return Boolean(user) && sameSecret(user.password, password);
}

// --- authentication levels (step-up) ---

const ACR_PWD = 'urn:dev:loa:pwd';
const ACR_MFA = 'urn:dev:loa:mfa';
const ACR_VALUES = [ACR_PWD, ACR_MFA];
/** The one-time code of every user (a stand-in for a TOTP app). */
const DEV_OTP = '123456';
/** Interaction reason when the session's acr is not among the requested acr_values. */
const ACR_UNMET_REASON = 'acr_values_unmet';

function requestedAcrs(acrValues) {
  return typeof acrValues === 'string' ? acrValues.split(' ').filter(Boolean) : [];
}

/**
 * oidc-provider's login prompt plus the enforcement of acr_values: a session whose acr is
 * not among the requested values must log in again (oidc-provider alone treats acr_values
 * as voluntary). The login answering the prompt is accepted whatever level it reached, like
 * the built-in max_age check does; the relying party checks the acr of the ID token.
 */
function buildInteractionPolicy() {
  const { Check, base } = interactionPolicy;
  const policy = base();
  policy.get('login').checks.add(new Check(
    ACR_UNMET_REASON,
    'requested ACR could not be obtained',
    'login_required',
    (ctx) => {
      const { oidc } = ctx;
      const requested = requestedAcrs(oidc.params.acr_values);
      if (!requested.length || !oidc.session.accountId || oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      return requested.includes(oidc.acr) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    },
    ({ oidc }) => ({ acr_values: requestedAcrs(oidc.params.acr_values), session_acr: oidc.acr ?? null }),
  ));
  return policy;
}

// ---------------------------------------------------------------------------------------
// event log

const MAX_EVENTS = 10000;
let events = [];

function record(type, data) {
  events.push({ type, at: Date.now(), ...data });
  if (events.length > MAX_EVENTS) events = events.slice(-MAX_EVENTS);
}

const SECRET_PARAMS = new Set([
  'client_secret', 'client_assertion', 'code', 'code_verifier', 'refresh_token', 'password',
  'registration_access_token', 'token', 'access_token', 'subject_token', 'actor_token',
]);

function redact(params) {
  const out = {};
  for (const [key, value] of Object.entries(params ?? {})) {
    out[key] = SECRET_PARAMS.has(key) ? '<redacted>' : value;
  }
  return out;
}

function plainParams(obj) {
  // koa's ctx.query / querystring.parse results have a null prototype; copy them.
  return Object.fromEntries(Object.entries(obj ?? {}));
}

// What the authorization request a token descends from asked for (code -> tokens ->
// refreshed tokens): its "connection", and whether it asked for offline_access.
const lineageByJti = new Map();
// the same, for authorization requests parked at an interaction (login form), by uid
const lineageByInteraction = new Map();
const MAX_LINEAGE = 50000;

function remember(map, key, value) {
  map.set(key, value);
  if (map.size > MAX_LINEAGE) map.delete(map.keys().next().value);
}

function asksOffline(scope) {
  return typeof scope === 'string' && scope.split(' ').includes('offline_access');
}

/** Lineage of the authorization request being processed in ctx (authorize or resume). */
function requestLineage(ctx) {
  const { oidc } = ctx;
  if (oidc?.route === 'authorization') {
    const raw = ctx.method === 'POST' ? (oidc.body ?? {}) : ctx.query;
    // a pushed request (PAR): the browser sent only client_id and request_uri
    const scope = effectiveParams(ctx, raw).scope;
    return { connection: oidc.params?.connection, offline: asksOffline(scope), org: findOrganization(oidc.params?.organization) };
  }
  if (oidc?.route === 'resume') {
    const uid = oidc.entities?.Interaction?.uid;
    return {
      connection: oidc.params?.connection,
      offline: Boolean(uid && lineageByInteraction.get(uid)?.offline),
      org: findOrganization(oidc.params?.organization),
    };
  }
  return undefined;
}

/** Lineage of a token, or of the token ctx is working from (code, refresh token, access token). */
function lineageFor(ctx, token) {
  if (token?.jti && lineageByJti.has(token.jti)) return lineageByJti.get(token.jti);
  const entities = ctx?.oidc?.entities ?? {};
  for (const name of ['AuthorizationCode', 'RotatedRefreshToken', 'RefreshToken', 'AccessToken']) {
    const jti = entities[name]?.jti;
    if (jti && lineageByJti.has(jti)) return lineageByJti.get(jti);
  }
  return ctx ? requestLineage(ctx) : undefined;
}

// ---------------------------------------------------------------------------------------
// oidc-provider configuration

/** Client metadata of this dev server: false = ID tokens without "sid" (logout tokens keep it). */
const ID_TOKEN_SID = 'devprovider_id_token_sid';

/** The provider session's "sid" for the client of ctx (like Auth0, in every ID token). */
async function sessionSid(ctx, token) {
  const clientId = ctx?.oidc?.client?.clientId;
  if (!clientId) return undefined;
  let session = ctx.oidc.route === 'token' ? undefined : ctx.oidc.session;
  if (!session && token?.sessionUid) session = await ctx.oidc.provider.Session.findByUid(token.sessionUid);
  return token?.sid ?? session?.sidFor(clientId);
}

/** False for a client registered with "devprovider_id_token_sid": false (its ID tokens get no sid). */
function idTokenSid(client) {
  return client?.[ID_TOKEN_SID] !== false;
}

async function findAccount(ctx, sub, token) {
  if (!Object.hasOwn(USERS, sub)) return undefined;
  const user = USERS[sub];
  return {
    accountId: sub,
    async claims(use) {
      const out = { sub, ...user.claims };
      const lineage = lineageFor(ctx, token);
      if (lineage?.connection) out.connection = lineage.connection;
      // a sign-in through an organization: its claims, for members only
      if (lineage?.org && ORGANIZATIONS[lineage.org].members.has(sub)) {
        out.org_id = lineage.org;
        out.org_name = ORGANIZATIONS[lineage.org].name;
      }
      if (use === 'id_token' && idTokenSid(ctx?.oidc?.client)) {
        const sid = await sessionSid(ctx, token);
        if (sid) out.sid = sid;
      }
      return out;
    },
  };
}

/** Grant everything the request asks for: every client is first-party, never ask consent. */
async function grantRequested(ctx, grant) {
  const { oidc } = ctx;
  const scopes = [...(oidc.requestParamOIDCScopes ?? [])];
  if (scopes.length) grant.addOIDCScope(scopes.join(' '));
  const claims = [...(oidc.requestParamClaims ?? [])];
  if (claims.length) grant.addOIDCClaims(claims);
  for (const [indicator, resourceServer] of Object.entries(oidc.resourceServers ?? {})) {
    const requested = [...(oidc.requestParamScopes ?? [])].filter((s) => resourceServer.scopes?.has(s));
    if (requested.length) grant.addResourceScope(indicator, requested.join(' '));
  }
  await grant.save();
  return grant;
}

async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const accountId = oidc.account?.accountId ?? oidc.session.accountId;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!grant || grant.accountId !== accountId || grant.clientId !== oidc.client.clientId) {
    grant = new oidc.provider.Grant({ accountId, clientId: oidc.client.clientId });
  }
  return grantRequested(ctx, grant);
}

function isLoopbackOrigin(origin) {
  try {
    const { protocol, hostname } = new URL(origin);
    return (protocol === 'http:' || protocol === 'https:') && isLoopbackHost(hostname.replace(/^\[|\]$/g, ''));
  } catch {
    return false;
  }
}

const ROUTES = {
  authorization: '/authorize',
  token: '/oauth/token',
  userinfo: '/userinfo',
  jwks: '/.well-known/jwks.json',
  end_session: '/oidc/logout',
  registration: '/oidc/register',
  revocation: '/oauth/revoke',
  introspection: '/oauth/introspect',
  pushed_authorization_request: '/oauth/par',
};

function buildConfiguration() {
  return {
    clients,
    clientDefaults: {
      ...FIRST_PARTY_DEFAULTS,
      id_token_signed_response_alg: 'RS256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    jwks,
    findAccount,
    extraClientMetadata: {
      properties: [ID_TOKEN_SID],
      validator(ctx, key, value) {
        if (key === ID_TOKEN_SID && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata(`${ID_TOKEN_SID} must be a boolean`);
        }
      },
    },
    loadExistingGrant,
    // Auth0-style authorize parameters; unknown parameters would be dropped silently.
    extraParams: { connection: null, audience: null, screen_hint: null, ...ORGANIZATION_PARAMS },
    acrValues: ACR_VALUES,
    claims: {
      // acr and amr in every ID token (the account's claims never hold them, so userinfo
      // does not get them); without this they would appear only when requested
      openid: ['sub', 'connection', 'sid', 'acr', 'amr', 'org_id', 'org_name', ROLES_CLAIM],
      profile: ['name', 'given_name', 'family_name', 'nickname', 'preferred_username'],
      email: ['email', 'email_verified'],
      acr: null,
      amr: null,
      auth_time: null,
      iss: null,
    },
    // Like Auth0, put the scope-granted claims into the ID token as well (oidc-provider's
    // default only puts them into userinfo when an access token is issued).
    conformIdTokenClaims: false,
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    // every client authentication method of OpenID Connect Core section 9 (a client registers
    // its own: client_secret_jwt uses its secret as the HS256 key, private_key_jwt its "jwks")
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'none'],
    enabledJWA: { clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    // Auth0 semantics: a refresh token whenever the authorization request asked for
    // offline_access. (oidc-provider alone drops offline_access unless prompt=consent.)
    issueRefreshToken: async (ctx, client, source) => client.grantTypeAllowed('refresh_token')
      && (source.scopes.has('offline_access') || lineageFor(ctx, source)?.offline === true),
    rotateRefreshToken: true,
    clientBasedCORS: (ctx, origin) => isLoopbackOrigin(origin),
    cookies: {
      keys: [crypto.randomBytes(32).toString('base64url')],
      // distinct names: on 127.0.0.1 cookies are shared by every port (RPs included)
      names: {
        session: '_devop_session',
        interaction: '_devop_interaction',
        resume: '_devop_interaction_resume',
      },
    },
    features: {
      devInteractions: { enabled: false },
      registration: {
        enabled: true,
        initialAccessToken: REGISTRATION_TOKEN ? REGISTRATION_TOKEN : false,
      },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      backchannelLogout: { enabled: true },
      revocation: { enabled: true },
      // RFC 9126, at /oauth/par (discovery: pushed_authorization_request_endpoint); a client's
      // request_uri stands for the pushed parameters at /authorize
      pushedAuthorizationRequests: {
        enabled: true,
        requirePushedAuthorizationRequests: REQUIRE_PAR,
        allowUnregisteredRedirectUris: false,
      },
      // resource indicators are not used; Auth0's "audience" is an extra param only
      resourceIndicators: { enabled: false },
    },
    interactions: {
      policy: buildInteractionPolicy(),
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    routes: ROUTES,
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: ID_TOKEN_TTL,
      RefreshToken: 14 * 24 * 60 * 60,
      Interaction: 60 * 60,
      Session: 14 * 24 * 60 * 60,
      Grant: 14 * 24 * 60 * 60,
    },
    renderError,
    // oidc-provider's outgoing requests (back-channel logout, jwks_uri, ...) refuse special-use
    // addresses such as 127.0.0.0/8 (SSRF protection via options.dispatcher); the relying
    // parties of this dev server live on loopback, so allow exactly those.
    fetch: (url, options) => {
      const { hostname } = new URL(url);
      if (isLoopbackHost(hostname.replace(/^\[|\]$/g, ''))) delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
  };
}

// ---------------------------------------------------------------------------------------
// HTML

function esc(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}label,input,button{display:block;margin:.4em 0}
.error{color:#b00020}.note{color:#555;font-size:.9em}</style>
</head>
<body>
<h1>${esc(title)}</h1>
${body}
</body>
</html>
`;
}

function otpField(mfaRequested) {
  const field = `<label for="otp">One-time code${mfaRequested ? '' : ' (optional)'}</label>
<input id="otp" name="otp" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]*">`;
  if (mfaRequested) {
    return `<p class="note" id="mfa-requested">This application asks for multi-factor authentication: enter your one-time code.</p>\n${field}`;
  }
  return `<details id="otp-details"><summary>Sign in with a one-time code</summary>\n${field}\n</details>`;
}

function loginPage(uid, { clientId, clientName, connection, organization, login = '', error, mfaRequested = false } = {}) {
  const who = clientName ? `${clientName} (${clientId})` : clientId;
  return page('Sign in — devprovider', `
<p class="note">Development OpenID Provider. Signing in to <strong id="client">${esc(who)}</strong>${connection ? ` with connection <strong id="connection">${esc(connection)}</strong>` : ''}${organization ? ` for the organization <strong id="organization">${esc(organization)}</strong>` : ''}.</p>
${error ? `<p class="error" id="error" data-error="${esc(error)}">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="login">Username</label>
<input id="login" name="login" type="text" required value="${esc(login)}" ${login ? '' : 'autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" required ${login ? 'autofocus' : ''}>
${otpField(mfaRequested)}
<button type="submit" id="submit">Sign in</button>
</form>
<form id="abort-form" method="post" action="/interaction/${esc(uid)}/abort">
<button type="submit" id="abort">Cancel</button>
</form>
<p class="note">Test users: alice / alice-password, bob / bob-password. One-time code: ${esc(DEV_OTP)}.</p>`);
}

async function logoutSource(ctx, form) {
  ctx.type = 'html';
  ctx.body = page('Sign out — devprovider', `
<p id="logout-question">Do you want to sign out from ${esc(ctx.host)}?</p>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout" id="logout-yes">Yes, sign me out</button>
<button type="submit" form="op.logoutForm" id="logout-no">No, stay signed in</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  const display = ctx.oidc.client?.clientName || ctx.oidc.client?.clientId;
  ctx.body = page('Signed out — devprovider', `<p id="logout-success">Your sign-out${display ? ` from ${esc(display)}` : ''} was successful.</p>`);
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Error — devprovider', Object.entries(out)
    .map(([key, value]) => `<p><strong>${esc(key)}</strong>: <span class="${esc(key)}">${esc(value)}</span></p>`)
    .join('\n'));
}

// ---------------------------------------------------------------------------------------
// raw HTTP helpers for the custom routes

function send(res, status, body, type = 'text/html; charset=utf-8', headers = {}) {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

function sendJson(res, status, value) {
  send(res, status, `${JSON.stringify(value)}\n`, 'application/json; charset=utf-8');
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

// ---------------------------------------------------------------------------------------
// interactions (login form; consent is granted automatically)

async function autoConsent(provider, req, res, details) {
  const { prompt: { details: missing = {} }, params, session } = details;
  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant) grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function clientInfo(provider, clientId) {
  const client = clientId ? await provider.Client.find(String(clientId)) : undefined;
  return { clientId, clientName: client?.clientName };
}

async function handleInteraction(provider, req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    send(res, 400, page('Sign-in expired — devprovider',
      `<p class="error" id="error">${esc(err.error_description || err.message)}</p><p>Start the sign-in again from the application.</p>`));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Sign-in mismatch — devprovider', '<p class="error" id="error">interaction id does not match the interaction cookie</p>'));
    return;
  }
  const { prompt, params } = details;
  const orgId = findOrganization(params.organization);
  const info = {
    ...(await clientInfo(provider, params.client_id)),
    connection: params.connection,
    organization: orgId ? ORGANIZATIONS[orgId].displayName : undefined,
    mfaRequested: requestedAcrs(params.acr_values).includes(ACR_MFA),
  };

  if (action === undefined) {
    if (req.method !== 'GET') { send(res, 405, 'method not allowed', 'text/plain', { Allow: 'GET' }); return; }
    record('interaction', { uid, prompt: prompt.name, reasons: prompt.reasons, client_id: params.client_id, params: redact(params) });
    if (prompt.name === 'consent') {
      await autoConsent(provider, req, res, details);
      return;
    }
    if (prompt.name !== 'login') {
      send(res, 500, page('Unsupported prompt — devprovider', `<p class="error" id="error">prompt ${esc(prompt.name)} is not supported</p>`));
      return;
    }
    send(res, 200, loginPage(uid, { ...info, login: params.login_hint ?? '' }));
    return;
  }

  if (req.method !== 'POST') { send(res, 405, 'method not allowed', 'text/plain', { Allow: 'POST' }); return; }

  if (action === 'abort') {
    record('login', { uid, client_id: params.client_id, login: null, ok: false, otp: false, acr: null, aborted: true });
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  // action === 'login'
  if (prompt.name !== 'login') {
    send(res, 400, page('Unexpected sign-in — devprovider', '<p class="error" id="error">this interaction does not ask for a login</p>'));
    return;
  }
  const form = await readForm(req);
  const login = typeof form.login === 'string' ? form.login.trim() : '';
  const otp = typeof form.otp === 'string' ? form.otp.trim() : '';
  const passwordOk = checkPassword(login, form.password);
  const otpOk = otp === '' || sameSecret(DEV_OTP, otp);
  const org = orgId ? ORGANIZATIONS[orgId] : undefined;
  const invited = Boolean(org && params.invitation && INVITATIONS[params.invitation] === orgId);
  const memberOk = !org || invited || org.members.has(login);
  const ok = passwordOk && otpOk && memberOk;
  const acr = ok ? (otp ? ACR_MFA : ACR_PWD) : null;
  record('login', { uid, client_id: params.client_id, login, ok, otp: otp !== '', acr, organization: orgId ?? null, invitation: invited });
  if (ok && invited) org.members.add(login); // accepting the invitation
  if (!ok) {
    let error = passwordOk ? 'Wrong one-time code.' : 'Wrong username or password.';
    if (passwordOk && otpOk) error = `${login} is not a member of ${org.displayName}.`;
    send(res, 200, loginPage(uid, { ...info, login, error }));
    return;
  }
  await provider.interactionFinished(req, res, {
    login: { accountId: login, acr, amr: otp ? ['pwd', 'otp'] : ['pwd'] },
  }, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------------------------------
// recording middleware (runs inside oidc-provider's Koa app, before its router)

function detectAuthMethod(headers, body) {
  const methods = [];
  if (/^basic\s/i.test(headers.authorization ?? '')) methods.push('client_secret_basic');
  if (body?.client_secret !== undefined) methods.push('client_secret_post');
  if (body?.client_assertion !== undefined) methods.push('client_assertion');
  if (methods.length > 1) return 'multiple';
  return methods[0] ?? 'none';
}

function basicClientId(headers) {
  const match = /^basic\s+(\S+)/i.exec(headers.authorization ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i === -1) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, i).replace(/\+/g, '%20'));
  } catch {
    return decoded.slice(0, i);
  }
}

function errorOf(ctx) {
  if (ctx.status < 400) return null;
  const body = ctx.body;
  if (body && typeof body === 'object' && !Buffer.isBuffer(body) && body.error) return body.error;
  return `http_${ctx.status}`;
}

function redirectError(ctx) {
  const location = ctx.response.get('location');
  if (!location) return null;
  try {
    const url = new URL(location, ctx.href);
    if (url.origin === ctx.origin) return null;
    return url.searchParams.get('error');
  } catch {
    return null;
  }
}

// What each pushed authorization request (PAR) asked for, as sent, by request_uri (oidc-provider's
// own ctx.oidc.params drops what it does not grant, e.g. offline_access without prompt=consent)
const pushedByRequestUri = new Map();

/** The parameters an authorization request stands for: its own, or the pushed ones (PAR). */
function effectiveParams(ctx, sent) {
  if (!sent.request_uri) return sent;
  return pushedByRequestUri.get(sent.request_uri)
    ?? Object.fromEntries(Object.entries(ctx.oidc?.params ?? {}).filter(([, value]) => value !== undefined));
}

/** The client authentication method used on the wire (a JWT assertion named by the client's registration). */
function authMethodOf(ctx, body) {
  const method = detectAuthMethod(ctx.headers, body);
  const registered = ctx.oidc?.client?.clientAuthMethod;
  if (method === 'client_assertion' && (registered === 'private_key_jwt' || registered === 'client_secret_jwt')) {
    return registered;
  }
  return method;
}

function recordingMiddleware() {
  return async function devRecorder(ctx, next) {
    const { path, method } = ctx;
    const query = plainParams(ctx.query);
    await next();
    const body = plainParams(ctx.oidc?.body);
    const clientId = ctx.oidc?.client?.clientId;

    if (path.startsWith(`${ROUTES.authorization}`) && ctx.oidc && ['authorization', 'resume'].includes(ctx.oidc.route)) {
      // an authorization request parked at the login form: remember what it asked for
      const location = ctx.response.get('location');
      const parked = location ? /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(new URL(location, ctx.href).pathname) : null;
      const lineage = parked ? requestLineage(ctx) : undefined;
      if (lineage) remember(lineageByInteraction, parked[1], lineage);
    }
    if (path === ROUTES.authorization && (method === 'GET' || method === 'POST')) {
      const sent = method === 'GET' ? query : body;
      record('authorize', {
        client_id: sent.client_id ?? clientId ?? null,
        method,
        params: redact(effectiveParams(ctx, sent)),
        sent: redact(sent),
        pushed: Boolean(sent.request_uri),
        status: ctx.status,
        error: errorOf(ctx) ?? redirectError(ctx),
      });
    } else if (path === ROUTES.pushed_authorization_request && method === 'POST') {
      if (ctx.status < 400 && typeof ctx.body?.request_uri === 'string') {
        remember(pushedByRequestUri, ctx.body.request_uri, body);
      }
      record('pushed_authorization', {
        client_id: clientId ?? body.client_id ?? basicClientId(ctx.headers) ?? null,
        auth_method: authMethodOf(ctx, body),
        params: redact(body),
        status: ctx.status,
        error: errorOf(ctx),
      });
    } else if (path === ROUTES.token && method === 'POST') {
      const authMethod = authMethodOf(ctx, body);
      const ok = ctx.status < 400 && ctx.body && typeof ctx.body === 'object';
      record('token', {
        client_id: clientId ?? body.client_id ?? basicClientId(ctx.headers) ?? null,
        grant_type: body.grant_type ?? null,
        auth_method: authMethod,
        params: redact(body),
        status: ctx.status,
        error: errorOf(ctx),
        issued: ok ? ['access_token', 'id_token', 'refresh_token'].filter((k) => ctx.body[k]) : [],
      });
    } else if (path === ROUTES.userinfo) {
      let auth = 'none';
      if (/^(bearer|dpop)\s/i.test(ctx.headers.authorization ?? '')) auth = 'header';
      else if (body.access_token) auth = 'body';
      else if (query.access_token) auth = 'query';
      record('userinfo', { method, status: ctx.status, auth, error: errorOf(ctx) });
    } else if (path === ROUTES.end_session && (method === 'GET' || method === 'POST')) {
      const params = method === 'GET' ? query : body;
      record('end_session', {
        client_id: params.client_id ?? clientId ?? null,
        method,
        params,
        status: ctx.status,
      });
    } else if (path === `${ROUTES.end_session}/confirm` && method === 'POST') {
      record('end_session_confirm', { logout: Boolean(body.logout), status: ctx.status, error: errorOf(ctx) });
    } else if (path === ROUTES.registration && method === 'POST') {
      const metadata = ctx.status < 400 && ctx.body && typeof ctx.body === 'object' ? redact(ctx.body) : null;
      record('registration', {
        client_id: metadata?.client_id ?? null,
        status: ctx.status,
        error: errorOf(ctx),
        metadata,
      });
    }
  };
}

// ---------------------------------------------------------------------------------------
// startup

// --- opt-in TLS (https, optionally mutual TLS) and source-address filter ---

function readPem(file, what) {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    return fail(`cannot read ${what} from ${file}: ${err.message}`);
  }
}

const TLS_CERT = args['tls-cert'] ?? env.DEVPROVIDER_TLS_CERT;
const TLS_KEY = args['tls-key'] ?? env.DEVPROVIDER_TLS_KEY;
const TLS_CLIENT_CA = args['tls-client-ca'] ?? env.DEVPROVIDER_TLS_CLIENT_CA;
if (Boolean(TLS_CERT) !== Boolean(TLS_KEY)) fail('--tls-cert and --tls-key go together');
if (TLS_CLIENT_CA && !TLS_CERT) fail('--tls-client-ca needs --tls-cert and --tls-key');
const SCHEME = TLS_CERT ? 'https' : 'http';
const ALLOWED_PEERS = new Set(args['allow-peer'] ?? (env.DEVPROVIDER_ALLOW_PEERS || '').split(',').filter(Boolean));

const httpServer = TLS_CERT
  ? https.createServer({
    cert: readPem(TLS_CERT, 'the TLS certificate'),
    key: readPem(TLS_KEY, 'the TLS key'),
    ...(TLS_CLIENT_CA
      ? { requestCert: true, rejectUnauthorized: true, ca: readPem(TLS_CLIENT_CA, 'the client CA') }
      : {}),
  })
  : http.createServer();
if (TLS_CERT) {
  httpServer.on('tlsClientError', (err, socket) => {
    if (VERBOSE) process.stderr.write(`devprovider: TLS handshake failed from ${socket.remoteAddress}: ${err.message}\n`);
  });
}
const sockets = new Set();
httpServer.on('connection', (socket) => {
  if (ALLOWED_PEERS.size && !ALLOWED_PEERS.has(String(socket.remoteAddress).replace(/^::ffff:/, ''))) {
    if (VERBOSE) process.stderr.write(`devprovider: refused a connection from ${socket.remoteAddress}\n`);
    socket.destroy();
    return;
  }
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
});

let shuttingDown = false;
function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (VERBOSE) process.stderr.write(`devprovider: ${signal}, shutting down\n`);
  httpServer.close(() => process.exit(0));
  httpServer.closeAllConnections?.();
  for (const socket of sockets) socket.destroy();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => shutdown('SIGHUP'));
if (args['watch-stdin']) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

httpServer.on('error', (err) => {
  fail(`cannot listen on ${HOST}:${PORT}: ${err.message}`);
});

httpServer.listen(PORT, HOST, () => {
  const { port } = httpServer.address();
  const hostForUrl = HOST.includes(':') ? `[${HOST}]` : HOST;
  const issuer = ISSUER_TEMPLATE
    ? ISSUER_TEMPLATE.replaceAll('{port}', String(port))
    : `${SCHEME}://${hostForUrl}:${port}`;
  let parsedIssuer;
  try {
    parsedIssuer = new URL(issuer);
  } catch {
    fail(`--issuer is not a URL: ${issuer}`);
  }
  if (parsedIssuer.pathname !== '/' || parsedIssuer.search || parsedIssuer.hash) {
    fail(`--issuer must have no path, query or fragment (the provider is mounted at /): ${issuer}`);
  }

  let provider;
  try {
    provider = new Provider(issuer, buildConfiguration());
  } catch (err) {
    fail(`invalid configuration: ${err.message}`);
  }
  provider.use(recordingMiddleware());

  // oidc-provider copies the session's sid into the authorization code (and from there into the
  // ID token) whenever a client has a back-channel logout URI with session_required; a client
  // with "devprovider_id_token_sid": false opts out of that, not of sid in its logout tokens.
  const { includeSid } = provider.Client.prototype;
  provider.Client.prototype.includeSid = function includeSidUnlessOptedOut() {
    return idTokenSid(this) && includeSid.call(this);
  };

  // remember what each token descends from (the "connection" claim, offline_access)
  for (const eventName of ['authorization_code.saved', 'access_token.saved', 'refresh_token.saved']) {
    provider.on(eventName, (token) => {
      const lineage = lineageFor(Provider.ctx);
      if (lineage) remember(lineageByJti, token.jti, lineage);
    });
  }
  provider.on('authorization.success', (ctx) => {
    record('authorization_response', { client_id: ctx.oidc?.client?.clientId ?? null, error: null });
  });
  provider.on('authorization.error', (ctx, err) => {
    record('authorization_response', {
      client_id: ctx.oidc?.client?.clientId ?? null,
      error: err.error ?? 'server_error',
      error_description: err.error_description ?? null,
    });
  });
  provider.on('backchannel.success', (ctx, client, accountId, sid) => {
    record('backchannel_logout', { client_id: client.clientId, sub: accountId, sid, ok: true, error: null });
  });
  provider.on('backchannel.error', (ctx, err, client, accountId, sid) => {
    const error = [err?.message ?? String(err), err?.cause?.message].filter(Boolean).join(': ');
    record('backchannel_logout', { client_id: client.clientId, sub: accountId, sid, ok: false, error });
  });
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`devprovider: server_error on ${ctx.method} ${ctx.path}: ${err?.stack ?? err}\n`);
  });

  const callback = provider.callback();

  httpServer.on('request', (req, res) => {
    const url = new URL(req.url, 'http://devprovider.invalid');
    if (VERBOSE) process.stderr.write(`devprovider: ${req.method} ${url.pathname}\n`);
    const route = (async () => {
      if (url.pathname === '/_dev/events') {
        if (req.method === 'GET') {
          const type = url.searchParams.get('type');
          sendJson(res, 200, type ? events.filter((e) => e.type === type) : events);
        } else if (req.method === 'DELETE') {
          events = [];
          sendJson(res, 200, []);
        } else {
          send(res, 405, 'method not allowed', 'text/plain', { Allow: 'GET, DELETE' });
        }
        return true;
      }
      const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?\/?$/.exec(url.pathname);
      if (match) {
        await handleInteraction(provider, req, res, match[1], match[2]);
        return true;
      }
      return false;
    })();
    route.then((handled) => {
      if (!handled) callback(req, res);
    }).catch((err) => {
      process.stderr.write(`devprovider: error on ${req.method} ${url.pathname}: ${err?.stack ?? err}\n`);
      if (!res.headersSent) send(res, 500, page('Error — devprovider', `<p class="error" id="error">${esc(err?.message ?? err)}</p>`));
      else res.destroy();
    });
  });

  process.stdout.write(`devprovider ready issuer=${issuer} port=${port} pid=${process.pid}\n`);
});
