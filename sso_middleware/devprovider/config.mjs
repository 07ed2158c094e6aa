/**
 * The oidc-provider configuration that makes it behave like an Auth0 tenant: Auth0's paths
 * (ROUTES), every client first-party (grants given without a consent screen), the claims
 * of ID tokens and userinfo (profile, email, roles, connection, org_id/org_name, sid, acr,
 * amr), acr_values enforced by the login prompt, refresh tokens whenever offline_access was
 * asked for, PKCE required, PAR, registration, RP-initiated, back-channel and front-channel
 * (frontchannel.mjs) logout, JWT access tokens for the APIs of --resources (Auth0's "audience"),
 * token introspection.
 *
 * Security caveat: CORS and the provider's outgoing requests (back-channel logout, a
 * client's jwks_uri) are opened to loopback only, the one place its relying parties live.
 */
import * as crypto from 'node:crypto';

import { errors, interactionPolicy } from 'oidc-provider';

import { ACR_VALUES, ORGANIZATIONS, ORGANIZATION_PARAMS, ROLES_CLAIM, USERS, requestedAcrs } from './accounts.mjs';
import { FIRST_PARTY_DEFAULTS, ID_TOKEN_SID, idTokenSid } from './clients.mjs';
import { FRONTCHANNEL_DISCOVERY, FRONTCHANNEL_METADATA, validateFrontchannelMetadata } from './frontchannel.mjs';
import { lineageFor } from './lineage.mjs';
import { isLoopbackHost } from './options.mjs';
import { logoutSource, postLogoutSuccessSource, renderError } from './pages.mjs';
import { mintUserinfoToken, resourceIndicators } from './resources.mjs';

export const ROUTES = {
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

/** Interaction reason when the session's acr is not among the requested acr_values. */
const ACR_UNMET_REASON = 'acr_values_unmet';

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

/** The provider session's "sid" for the client of ctx (like Auth0, in every ID token). */
async function sessionSid(ctx, token) {
  const clientId = ctx?.oidc?.client?.clientId;
  if (!clientId) return undefined;
  let session = ctx.oidc.route === 'token' ? undefined : ctx.oidc.session;
  if (!session && token?.sessionUid) session = await ctx.oidc.provider.Session.findByUid(token.sessionUid);
  return token?.sid ?? session?.sidFor(clientId);
}

/** A user as oidc-provider sees it: its claims, plus those of the sign-in the token descends from. */
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

/** The configuration of oidc-provider for these clients, keys, options and APIs (resources.mjs). */
export function buildConfiguration({ clients, jwks, options, resources }) {
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
      properties: [ID_TOKEN_SID, ...FRONTCHANNEL_METADATA],
      validator(ctx, key, value, metadata) {
        if (key === ID_TOKEN_SID && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata(`${ID_TOKEN_SID} must be a boolean`);
        }
        validateFrontchannelMetadata(key, value, metadata);
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
    // a JWT access token for an API (with scope openid) also works at userinfo, as Auth0's do
    formats: { customizers: { jwt: mintUserinfoToken } },
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
        initialAccessToken: options.registrationToken ? options.registrationToken : false,
      },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      backchannelLogout: { enabled: true },
      revocation: { enabled: true },
      // RFC 9126, at /oauth/par (discovery: pushed_authorization_request_endpoint); a client's
      // request_uri stands for the pushed parameters at /authorize
      pushedAuthorizationRequests: {
        enabled: true,
        requirePushedAuthorizationRequests: options.requirePar,
        allowUnregisteredRedirectUris: false,
      },
      // APIs (resources.mjs): Auth0's "audience" (or RFC 8707's "resource") gets a JWT access
      // token for that API; without one, the opaque userinfo token of always
      resourceIndicators: resourceIndicators(resources, options),
      // RFC 7662 at /oauth/introspect: a confidential client may introspect any token (an
      // API checking an opaque one), a public client only its own (oidc-provider's policy)
      introspection: { enabled: true },
    },
    interactions: {
      policy: buildInteractionPolicy(),
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    routes: ROUTES,
    // oidc-provider 9 has no front-channel logout of its own: frontchannel.mjs adds it
    discovery: { claim_types_supported: ['normal'], ...FRONTCHANNEL_DISCOVERY },
    ttl: {
      // an API's own "ttl" (resources.mjs), else --access-token-ttl
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? options.accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: options.idTokenTtl,
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
