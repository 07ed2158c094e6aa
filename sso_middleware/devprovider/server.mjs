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
 *   --resources JSON|FILE     the APIs (OAuth resource servers) access tokens can be asked for,
 *                             inline JSON or a file [DEVPROVIDER_RESOURCES]:
 *                               {"<identifier>": {"scopes": ["read:messages", ...],
 *                                                 "format": "jwt"|"opaque", "ttl": SECS}}
 *                             ("format" default "jwt", "ttl" default --access-token-ttl)
 *                             (default: {"https://app2.example/api": {"scopes":
 *                               ["read:messages", "write:messages", "read:admin"]}})
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
 *   - Front-Channel Logout 1.0 (which oidc-provider 9 dropped; frontchannel.mjs): a client may
 *     register "frontchannel_logout_uri" (on the origin of one of its redirect_uris) and
 *     "frontchannel_logout_session_required"; confirming an RP-initiated logout answers with a
 *     page framing that URI (with iss and the client's sid when required) for every client the
 *     logout ends, then goes on to the post-logout redirect once the frames have loaded.
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
 * APIs and access tokens (Auth0's "APIs"; see resources.mjs):
 *   - an authorization request with audience=<identifier> (Auth0's parameter) or
 *     resource=<identifier> (RFC 8707) of an API in --resources gets, from the token endpoint
 *     (authorization_code and refresh_token grants; the token request need not repeat it), an
 *     access token for that API: for "format": "jwt" a JWT access token (RFC 9068: header
 *     typ "at+jwt", RS256, kid of the signing key in the JWKS; claims iss, sub, aud = the
 *     identifier, client_id, scope = the requested scopes the API defines, iat, exp, jti);
 *     for "format": "opaque" an opaque token whose introspection answers aud = the identifier;
 *   - an unknown identifier fails with error=invalid_target;
 *   - like Auth0's, a JWT access token for an API is accepted at /userinfo too when the request
 *     had scope openid (it answers the OIDC scopes' claims; oidc-provider alone refuses tokens
 *     with an audience there);
 *   - a request without audience/resource gets the opaque userinfo access token as before;
 *   - public clients (token_endpoint_auth_method "none", PKCE) get them just the same;
 *   - token introspection (RFC 7662) at /oauth/introspect: a confidential client may introspect
 *     any token, a public client only its own.
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
 *   /oidc/register (dynamic client registration), /oauth/revoke, /oauth/introspect (RFC 7662),
 *   /oauth/par (pushed authorization requests, RFC 9126)
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
 *   revocation              {client_id, auth_method, token_type_hint, status, error} (RFC 7009, at
 *                            /oauth/revoke; never the token)
 *   end_session             {client_id, method, params}
 *   end_session_confirm     {logout: bool}
 *   backchannel_logout      {client_id, sub, sid, ok, error}
 *   frontchannel_logout     {client_id, sid, url}  (an iframe of the confirmed logout's page)
 *   registration            {client_id, status, metadata (secrets redacted)}
 * auth_method is what the client actually used on the wire: "client_secret_basic" (an
 * Authorization: Basic header), "client_secret_post" (client_secret in the body),
 * "client_secret_jwt"/"private_key_jwt"/"client_assertion", "none", or "multiple".
 */

// The modules, one concern each (--help prints only the comment above):
//   server.mjs        this entry point: options -> keys, clients -> server -> provider -> ready line
//   options.mjs       command-line options and environment variables; fail(), isLoopbackHost()
//   keys.mjs          signing keys (--keys, --previous-keys, --write-keys)
//   clients.mjs       the default or --clients relying parties; "devprovider_id_token_sid"
//   resources.mjs     the APIs of --resources: JWT access tokens for Auth0's "audience"
//   accounts.mjs      users, passwords, one-time code, acr levels, Organizations and invitations
//   lineage.mjs       what a token descends from (connection, organization, offline_access)
//   config.mjs        the oidc-provider configuration (Auth0-like routes, claims, grants, features)
//   pages.mjs         HTML pages and raw responses of the custom routes
//   interactions.mjs  the login form routes (/interaction/:uid[/login|/abort])
//   events.mjs        the event log, its recording middleware and /_dev/events
//   frontchannel.mjs  Front-Channel Logout 1.0 (client metadata, discovery, the page of iframes)
//   listener.mjs      the http/https server, mutual TLS, --allow-peer, socket tracking
import Provider from 'oidc-provider';

import { loadClients, idTokenSid } from './clients.mjs';
import { buildConfiguration } from './config.mjs';
import { recordProviderEvents, recordingMiddleware, serveEvents } from './events.mjs';
import { frontchannelLogout } from './frontchannel.mjs';
import { handleInteraction } from './interactions.mjs';
import { loadSigningKeys } from './keys.mjs';
import { trackTokenLineage } from './lineage.mjs';
import { createHttpServer } from './listener.mjs';
import { fail, readOptions } from './options.mjs';
import { esc, page, send } from './pages.mjs';
import { loadResources, userinfoTokenFor } from './resources.mjs';

const options = readOptions();
const jwks = loadSigningKeys(options);
const clients = loadClients(options);
const resources = loadResources(options.resourcesOption);
const { httpServer, scheme, sockets } = createHttpServer(options);
const { host: HOST, port: PORT, verbose: VERBOSE } = options;

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
if (options.watchStdin) {
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
  const issuer = options.issuerTemplate
    ? options.issuerTemplate.replaceAll('{port}', String(port))
    : `${scheme}://${hostForUrl}:${port}`;
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
    provider = new Provider(issuer, buildConfiguration({ clients, jwks, options, resources }));
  } catch (err) {
    fail(`invalid configuration: ${err.message}`);
  }
  provider.use(recordingMiddleware());
  provider.use(frontchannelLogout(provider));

  // oidc-provider copies the session's sid into the authorization code (and from there into the
  // ID token) whenever a client has a back-channel logout URI with session_required; a client
  // with "devprovider_id_token_sid": false opts out of that, not of sid in its logout tokens.
  const { includeSid } = provider.Client.prototype;
  provider.Client.prototype.includeSid = function includeSidUnlessOptedOut() {
    return idTokenSid(this) && includeSid.call(this);
  };

  // remember what each token descends from (the "connection" claim, offline_access)
  trackTokenLineage(provider);
  recordProviderEvents(provider);
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`devprovider: server_error on ${ctx.method} ${ctx.path}: ${err?.stack ?? err}\n`);
  });

  const callback = provider.callback();

  httpServer.on('request', (req, res) => {
    const url = new URL(req.url, 'http://devprovider.invalid');
    if (VERBOSE) process.stderr.write(`devprovider: ${req.method} ${url.pathname}\n`);
    if (url.pathname === '/userinfo') {
      // a JWT access token for an API stands for the userinfo token minted with it (Auth0-like)
      const standIn = userinfoTokenFor(req.headers.authorization, { jwks, issuer });
      if (standIn) req.headers.authorization = `Bearer ${standIn}`;
    }
    const route = (async () => {
      if (url.pathname === '/_dev/events') {
        serveEvents(req, res, url);
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
