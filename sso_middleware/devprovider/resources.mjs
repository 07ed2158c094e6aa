/**
 * The APIs (OAuth resource servers) the provider issues access tokens for, like an Auth0
 * tenant's "APIs": an authorization request naming one with Auth0's `audience` parameter
 * (or RFC 8707's `resource`) gets an access token for that API — a JWT access token
 * (RFC 9068, header typ "at+jwt", signed with the provider's keys as published in its JWKS;
 * claims iss, sub, aud = the identifier, client_id, scope = the granted scopes of that API,
 * iat, exp, jti) or, for an API with "format": "opaque", an opaque one the API introspects.
 * A request without audience/resource gets what it always got: an opaque access token for
 * the userinfo endpoint. Like Auth0's, a JWT access token for an API whose request had
 * scope openid is accepted at userinfo too (oidc-provider alone refuses any token with an
 * audience there): its issuance also mints an opaque userinfo token for the same grant and
 * OIDC scopes, which /userinfo uses in its stead once the JWT's signature checks out.
 *
 * --resources is a JSON object (inline, or the name of a file holding it):
 *   {"<identifier>": {"scopes": ["read:messages", ...], "format": "jwt"|"opaque", "ttl": SECS}}
 * "format" defaults to "jwt", "ttl" to --access-token-ttl. Identifiers are absolute URIs
 * (RFC 8707), e.g. Auth0's "https://api.example.com/".
 *
 * Security caveat: any client may ask for any of these APIs (every client is first-party);
 * the scopes granted are those requested that the API defines, nothing else. A JWT stands
 * for its userinfo token only when it carries the provider's own valid signature.
 */
import * as crypto from 'node:crypto';

import { errors } from 'oidc-provider';

import { fail, readJson } from './options.mjs';

/** The API of the demo's App 2 (sso_middleware.testing.DEFAULT_RESOURCES describes it to Python). */
export const DEFAULT_RESOURCES = {
  'https://app2.example/api': { scopes: ['read:messages', 'write:messages', 'read:admin'] },
};

const FORMATS = new Set(['jwt', 'opaque']);
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 scope-token

/** The --resources option (inline JSON or a file) checked, or the default APIs. */
export function loadResources(raw) {
  if (raw === undefined || raw === '') return normalise(DEFAULT_RESOURCES, 'the default');
  const source = raw.trimStart().startsWith('{') ? parseInline(raw) : readJson(raw, 'resources');
  return normalise(source, raw.trimStart().startsWith('{') ? '--resources' : raw);
}

function parseInline(raw) {
  try {
    return JSON.parse(raw);
  } catch (err) {
    return fail(`--resources is not valid JSON: ${err.message}`);
  }
}

function normalise(source, what) {
  if (!source || typeof source !== 'object' || Array.isArray(source)) {
    fail(`${what} must be a JSON object {"<identifier>": {"scopes": [...]}}`);
  }
  const out = new Map();
  for (const [identifier, spec] of Object.entries(source)) {
    const url = URL.parse(identifier);
    if (!url || url.hash || identifier.includes('#')) fail(`resource ${JSON.stringify(identifier)} must be an absolute URI without fragment`);
    if (!spec || typeof spec !== 'object') fail(`resource ${identifier}: expected an object`);
    const scopes = typeof spec.scopes === 'string' ? spec.scopes.split(' ').filter(Boolean) : spec.scopes ?? [];
    if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string' && SCOPE_TOKEN.test(s))) {
      fail(`resource ${identifier}: "scopes" must be a list of scope tokens`);
    }
    const format = spec.format ?? 'jwt';
    if (!FORMATS.has(format)) fail(`resource ${identifier}: "format" must be "jwt" or "opaque"`);
    if (spec.ttl !== undefined && !(Number.isInteger(spec.ttl) && spec.ttl > 0)) {
      fail(`resource ${identifier}: "ttl" must be a positive integer (seconds)`);
    }
    out.set(identifier, { scopes, format, ttl: spec.ttl });
  }
  return out;
}

/**
 * oidc-provider's features.resourceIndicators for these APIs: Auth0's `audience` stands for
 * `resource` when the request has none, and the code's resource carries over to the token
 * request (an SPA's token request, like Auth0's, names no resource again).
 */
export function resourceIndicators(resources, { accessTokenTtl }) {
  return {
    enabled: true,
    async defaultResource(ctx, client, oneOf) {
      if (oneOf) return oneOf;
      const audience = ctx.oidc.params?.audience;
      return typeof audience === 'string' && audience ? audience : undefined;
    },
    async useGrantedResource() {
      return true;
    },
    async getResourceServerInfo(ctx, identifier) {
      const api = resources.get(identifier);
      if (!api) throw new errors.InvalidTarget(`unknown API (resource/audience) ${identifier}`);
      return {
        scope: api.scopes.join(' '),
        accessTokenFormat: api.format,
        accessTokenTTL: api.ttl ?? accessTokenTtl,
        ...(api.format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
      };
    },
  };
}

// jti of a JWT access token -> the opaque userinfo token minted with it (bounded, oldest first)
const userinfoTokens = new Map();
const MAX_USERINFO_TOKENS = 50000;

/**
 * formats.customizers.jwt: a JWT access token whose grant has scope openid gets an opaque
 * userinfo token of the same account, client, grant and lifetime (Auth0's API tokens also
 * name its /userinfo as audience; oidc-provider's userinfo refuses any token with an aud).
 */
export async function mintUserinfoToken(ctx, token, jwt) {
  const { entities } = ctx.oidc;
  const source = entities.AuthorizationCode ?? entities.RotatedRefreshToken ?? entities.RefreshToken;
  const grant = entities.Grant;
  if (!source || !grant || !token.accountId || !jwt.payload.jti) return;
  const scope = grant.getOIDCScopeFiltered(source.scopes);
  if (!scope.split(' ').includes('openid')) return;
  const companion = new ctx.oidc.provider.AccessToken({
    accountId: token.accountId,
    client: token.client,
    grantId: token.grantId,
    gty: token.gty,
    sessionUid: token.sessionUid,
    sid: token.sid,
    scope,
    claims: source.claims,
    expiresIn: token.expiration,
  });
  userinfoTokens.set(jwt.payload.jti, await companion.save());
  if (userinfoTokens.size > MAX_USERINFO_TOKENS) userinfoTokens.delete(userinfoTokens.keys().next().value);
}

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/**
 * The opaque userinfo token standing for a "Bearer <JWT access token>" header, or undefined:
 * only for a JWT signed (RS256) by one of the provider's keys, from this issuer, not expired.
 */
export function userinfoTokenFor(authorization, { jwks, issuer }) {
  const match = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(authorization ?? '');
  if (!match) return undefined;
  try {
    const [, head, body, signature] = match;
    const header = b64json(head);
    const jwk = jwks.keys.find((k) => k.kid === header.kid && k.kty === 'RSA');
    if (header.alg !== 'RS256' || !jwk) return undefined;
    const key = crypto.createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: 'jwk' });
    if (!crypto.verify('sha256', Buffer.from(`${head}.${body}`), key, Buffer.from(signature, 'base64url'))) return undefined;
    const payload = b64json(body);
    if (payload.iss !== issuer || !(payload.exp > Date.now() / 1000)) return undefined;
    return userinfoTokens.get(payload.jti);
  } catch {
    return undefined;
  }
}
