/**
 * What the authorization request a token descends from asked for — its "connection", its
 * organization, and whether it asked for offline_access — followed from the request
 * (plain or pushed, RFC 9126) through the login form to the code, the tokens and every
 * rotated refresh token. oidc-provider keeps none of this (it drops offline_access without
 * prompt=consent), but Auth0's behaviour depends on it: the "connection" and org claims, and
 * a refresh token whenever offline_access was asked for.
 *
 * Everything is in memory and bounded (the oldest entries go first).
 */
import Provider from 'oidc-provider';

import { findOrganization } from './accounts.mjs';

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

// What each pushed authorization request (PAR) asked for, as sent, by request_uri (oidc-provider's
// own ctx.oidc.params drops what it does not grant, e.g. offline_access without prompt=consent)
const pushedByRequestUri = new Map();

/** The parameters an authorization request stands for: its own, or the pushed ones (PAR). */
export function effectiveParams(ctx, sent) {
  if (!sent.request_uri) return sent;
  return pushedByRequestUri.get(sent.request_uri)
    ?? Object.fromEntries(Object.entries(ctx.oidc?.params ?? {}).filter(([, value]) => value !== undefined));
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
export function lineageFor(ctx, token) {
  if (token?.jti && lineageByJti.has(token.jti)) return lineageByJti.get(token.jti);
  const entities = ctx?.oidc?.entities ?? {};
  for (const name of ['AuthorizationCode', 'RotatedRefreshToken', 'RefreshToken', 'AccessToken']) {
    const jti = entities[name]?.jti;
    if (jti && lineageByJti.has(jti)) return lineageByJti.get(jti);
  }
  return ctx ? requestLineage(ctx) : undefined;
}

/** Remember the lineage of an authorization request ctx parked at the login form (by interaction uid). */
export function rememberParkedRequest(ctx) {
  const location = ctx.response.get('location');
  const parked = location ? /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(new URL(location, ctx.href).pathname) : null;
  const lineage = parked ? requestLineage(ctx) : undefined;
  if (lineage) remember(lineageByInteraction, parked[1], lineage);
}

/** Remember the parameters of a pushed authorization request, by the request_uri it was given. */
export function rememberPushedRequest(requestUri, params) {
  remember(pushedByRequestUri, requestUri, params);
}

/** Give every code, access token and refresh token the lineage of what it was issued from. */
export function trackTokenLineage(provider) {
  for (const eventName of ['authorization_code.saved', 'access_token.saved', 'refresh_token.saved']) {
    provider.on(eventName, (token) => {
      const lineage = lineageFor(Provider.ctx);
      if (lineage) remember(lineageByJti, token.jti, lineage);
    });
  }
}
