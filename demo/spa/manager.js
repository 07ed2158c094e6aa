// The SPA's oidc-client-ts UserManager, built from /config.json (served by demo/spa.py).
// `oidc` is the global of the library's browser build (/vendor/oidc-client-ts.min.js).

export async function loadConfig() {
  const answer = await fetch('/config.json', { cache: 'no-store' });
  if (!answer.ok) throw new Error(`config.json: HTTP ${answer.status}`);
  return answer.json();
}

export function userManager(config) {
  // Tokens in localStorage: every tab of this origin shares the sign-in (see demo/spa.py's caveat).
  const store = new oidc.WebStorageStateStore({ store: window.localStorage });
  return new oidc.UserManager({
    authority: config.authority,
    client_id: config.client_id,
    redirect_uri: config.redirect_uri,
    silent_redirect_uri: config.silent_redirect_uri,
    post_logout_redirect_uri: config.post_logout_redirect_uri,
    response_type: 'code', // with PKCE (S256): oidc-client-ts always sends a code_challenge
    scope: config.scope,
    // Auth0's way of asking for an access token for an API: its identifier as "audience"
    extraQueryParams: { audience: config.audience },
    userStore: store,
    stateStore: store,
    // The renewal is the app's own (app.js: on load, on focus, every check_seconds), so that it
    // can show what the provider answered; no refresh token is asked for, so signinSilent()
    // uses the hidden iframe with prompt=none, which asks the provider's session itself.
    automaticSilentRenew: false,
    monitorSession: false,
    loadUserInfo: false,
    silentRequestTimeoutInSeconds: 10,
  });
}
