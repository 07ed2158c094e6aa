/**
 * The event log: what relying parties sent on the wire and what the provider answered,
 * recorded so that tests can assert it (GET /_dev/events[?type=T], DELETE /_dev/events; the
 * event types and fields are listed in server.mjs's header). recordingMiddleware() watches
 * oidc-provider's Koa app, recordProviderEvents() its events (authorization results,
 * back-channel logouts); the login form records its own.
 *
 * Security caveat: secret parameters (client secrets and assertions, codes, verifiers,
 * tokens, passwords) are stored as "<redacted>"; the log is in memory and bounded.
 */
import { ROUTES } from './config.mjs';
import { effectiveParams, rememberParkedRequest, rememberPushedRequest } from './lineage.mjs';
import { send, sendJson } from './pages.mjs';

const MAX_EVENTS = 10000;
let events = [];

export function record(type, data) {
  events.push({ type, at: Date.now(), ...data });
  if (events.length > MAX_EVENTS) events = events.slice(-MAX_EVENTS);
}

const SECRET_PARAMS = new Set([
  'client_secret', 'client_assertion', 'code', 'code_verifier', 'refresh_token', 'password',
  'registration_access_token', 'token', 'access_token', 'subject_token', 'actor_token',
]);

export function redact(params) {
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

/** GET (optionally ?type=T) or DELETE /_dev/events. */
export function serveEvents(req, res, url) {
  if (req.method === 'GET') {
    const type = url.searchParams.get('type');
    sendJson(res, 200, type ? events.filter((e) => e.type === type) : events);
  } else if (req.method === 'DELETE') {
    events = [];
    sendJson(res, 200, []);
  } else {
    send(res, 405, 'method not allowed', 'text/plain', { Allow: 'GET, DELETE' });
  }
}

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

/** The client authentication method used on the wire (a JWT assertion named by the client's registration). */
function authMethodOf(ctx, body) {
  const method = detectAuthMethod(ctx.headers, body);
  const registered = ctx.oidc?.client?.clientAuthMethod;
  if (method === 'client_assertion' && (registered === 'private_key_jwt' || registered === 'client_secret_jwt')) {
    return registered;
  }
  return method;
}

/** The Koa middleware recording authorize, PAR, token, userinfo, revocation, end_session and registration requests. */
export function recordingMiddleware() {
  return async function devRecorder(ctx, next) {
    const { path, method } = ctx;
    const query = plainParams(ctx.query);
    await next();
    const body = plainParams(ctx.oidc?.body);
    const clientId = ctx.oidc?.client?.clientId;

    if (path.startsWith(`${ROUTES.authorization}`) && ctx.oidc && ['authorization', 'resume'].includes(ctx.oidc.route)) {
      // an authorization request parked at the login form: remember what it asked for
      rememberParkedRequest(ctx);
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
        rememberPushedRequest(ctx.body.request_uri, body);
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
    } else if (path === ROUTES.revocation && method === 'POST') {
      // RFC 7009: which client revoked which kind of token, authenticated how (never the token)
      record('revocation', {
        client_id: clientId ?? body.client_id ?? basicClientId(ctx.headers) ?? null,
        auth_method: authMethodOf(ctx, body),
        token_type_hint: body.token_type_hint ?? null,
        status: ctx.status,
        error: errorOf(ctx),
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

/** Record oidc-provider's own events: authorization responses and back-channel logouts. */
export function recordProviderEvents(provider) {
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
}
