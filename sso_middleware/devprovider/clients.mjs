/**
 * The relying parties the provider knows at start: the two default clients (app1, app2;
 * sso_middleware.testing.DEFAULT_CLIENTS describes them to Python), or the list of client
 * metadata in --clients. Every client is first-party (FIRST_PARTY_DEFAULTS, also oidc-provider's
 * clientDefaults for registered ones). Also this provider's one extra client metadata,
 * "devprovider_id_token_sid".
 *
 * Security caveat: the default secrets are public (server.mjs's header lists them), one
 * reason the provider binds loopback only.
 */
import { fail, readJson } from './options.mjs';

export const FIRST_PARTY_DEFAULTS = {
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

/** The static clients: the defaults, or those of --clients (first-party defaults filled in). */
export function loadClients({ clientsFile }) {
  if (!clientsFile) return DEFAULT_CLIENTS;
  const loaded = readJson(clientsFile, 'clients');
  if (!Array.isArray(loaded)) fail(`${clientsFile} must hold a JSON list of client metadata objects`);
  return loaded.map((c) => {
    const copy = { ...FIRST_PARTY_DEFAULTS, ...c };
    for (const key of REGISTRATION_ONLY) delete copy[key];
    return copy;
  });
}

/** Client metadata of this dev server: false = ID tokens without "sid" (logout tokens keep it). */
export const ID_TOKEN_SID = 'devprovider_id_token_sid';

/** False for a client registered with "devprovider_id_token_sid": false (its ID tokens get no sid). */
export function idTokenSid(client) {
  return client?.[ID_TOKEN_SID] !== false;
}
