// App 1, the single-page app: sign-in, the user, App 2's API, links, silent renewal, sign-out.
import { loadConfig, userManager } from './manager.js';

const $ = (id) => document.getElementById(id);
const config = await loadConfig();
const manager = userManager(config);

// What a prompt=none request answers when the provider has no session the user could use.
const SESSION_GONE = new Set(['login_required', 'interaction_required', 'consent_required', 'account_selection_required']);

const clock = () => new Date().toLocaleTimeString();

function showSignedOut(why) {
  $('state').textContent = 'Signed out';
  if (why) $('signed-out-why').textContent = why;
  $('signed-in').hidden = true;
  $('signed-out').hidden = false;
}

// The claims of a JWT's payload, for display only (App 2 is the one that validates the token).
function jwtPayload(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

function showSignedIn(user) {
  const { profile } = user;
  $('state').textContent = `Signed in as ${profile.name ?? profile.sub}`;
  $('user-name').textContent = profile.name ?? '';
  $('user-email').textContent = profile.email ?? '';
  $('user-sub').textContent = profile.sub;
  const claims = user.access_token ? jwtPayload(user.access_token) : null;
  $('token-audience').textContent = claims ? [].concat(claims.aud).join(', ') : 'an opaque token (not a JWT)';
  $('signed-out').hidden = true;
  $('signed-in').hidden = false;
}

let renewing = false;

// A silent renewal: a hidden iframe asks the provider with prompt=none. A live provider session
// answers with a new code (new tokens); an ended one answers login_required: signed out.
async function renew(trigger) {
  if (renewing || !(await manager.getUser())) return;
  renewing = true;
  try {
    const user = await manager.signinSilent();
    showSignedIn(user);
    $('renewal').textContent = `${clock()} (${trigger}): the provider session is alive, new tokens`;
  } catch (err) {
    if (SESSION_GONE.has(err.error)) {
      await manager.removeUser();
      showSignedOut(`At ${clock()} a silent renewal (${trigger}) asked the provider with prompt=none, and it `
        + `answered "${err.error}": the provider session has ended, so this app's sign-in has too. A sign-out `
        + 'at any app that ends the provider session signs you out here at the next renewal.');
    } else {
      $('renewal').textContent = `${clock()} (${trigger}): failed (${err.message}); still signed in here`;
    }
  } finally {
    renewing = false;
  }
}

async function callApi(withToken) {
  const user = await manager.getUser();
  const headers = withToken && user ? { Authorization: `Bearer ${user.access_token}` } : {};
  const status = $('api-status');
  try {
    // credentials "omit": App 2's session cookie never travels; only the token authenticates.
    const answer = await fetch(config.api_url, { headers, credentials: 'omit', cache: 'no-store' });
    const challenge = answer.headers.get('WWW-Authenticate');
    status.textContent = `HTTP ${answer.status} ${withToken ? 'with' : 'without'} the token`
      + (challenge ? ` (WWW-Authenticate: ${challenge})` : '');
    status.className = answer.ok ? 'ok' : 'bad';
    $('api-result').textContent = await answer.text();
    $('api-result').hidden = false;
  } catch (err) {
    status.textContent = `the API did not answer (${err.message})`;
    status.className = 'bad';
  }
}

async function signOut() {
  try {
    await manager.signoutRedirect(); // the provider's end-session endpoint, id_token_hint included
  } catch (err) {
    await manager.removeUser(); // e.g. a provider without an end-session endpoint
    showSignedOut(`Signed out of this app only (${err.message}).`);
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  const fromCallback = location.pathname === '/callback';
  if (fromCallback) {
    try {
      await manager.signinRedirectCallback();
    } catch (err) {
      showSignedOut(`The sign-in failed: ${err.error ?? err.message}`);
      history.replaceState(null, '', '/');
      return;
    }
    history.replaceState(null, '', '/');
  } else if (params.has('state')) { // back from the provider's logout page
    try { await manager.signoutRedirectCallback(); } catch { /* an unknown state: nothing to finish */ }
    history.replaceState(null, '', '/');
  }
  const user = await manager.getUser();
  if (!user) {
    showSignedOut();
    return;
  }
  showSignedIn(user);
  if (!fromCallback) await renew('on load'); // tokens from an earlier visit: is that sign-in still alive?
}

$('to-app2').href = config.app2_sso_url;
$('to-app3').href = config.app3_sso_url;
$('sign-in').addEventListener('click', () => manager.signinRedirect());
$('call-api').addEventListener('click', () => callApi(true));
$('call-api-no-token').addEventListener('click', () => callApi(false));
$('renew').addEventListener('click', () => renew('button'));
$('sign-out').addEventListener('click', signOut);
window.addEventListener('focus', () => renew('on focus'));
setInterval(() => renew(`every ${config.check_seconds} s`), config.check_seconds * 1000);
await start();
