/**
 * OpenID Connect Front-Channel Logout 1.0, the provider's side, which oidc-provider 9 no longer
 * has (v7's draft feature "frontchannelLogout" is gone; 9.13.3 has no front-channel code): clients may register
 * "frontchannel_logout_uri" and "frontchannel_logout_session_required" (section 2), discovery
 * says "frontchannel_logout_supported" and "frontchannel_logout_session_supported" (section 3),
 * and when a user confirms an RP-initiated logout, the answer is not the bare redirect but a
 * page holding an <iframe> for each client of the ended provider session that registered a
 * frontchannel_logout_uri (with "iss" and that client's "sid" when it asked for them), which
 * goes on to the redirect once every frame has loaded (or after FRAME_TIMEOUT_MS). The frames
 * are small and visible (real providers hide them) so that a screenshot shows what each
 * application answered.
 *
 * Which clients: those oidc-provider itself ends at that confirmation -- every client of the
 * session with "Yes, sign me out" (logout=yes), only the initiating one without it -- read
 * from the session as it was before the confirmation destroyed it.
 *
 * Security caveat: every value put into the page goes through esc(), the redirect target is
 * oidc-provider's own (already checked against the client's post_logout_redirect_uris), and
 * only http(s) URIs without a fragment on the origin of one of the client's redirect_uris are
 * accepted at registration (section 2's rule), so a client cannot make the page frame or
 * navigate anywhere else.
 */
import { errors } from 'oidc-provider';

import { ROUTES } from './config.mjs';
import { record } from './events.mjs';
import { esc, page } from './pages.mjs';

export const FRONTCHANNEL_URI = 'frontchannel_logout_uri';
export const FRONTCHANNEL_SESSION_REQUIRED = 'frontchannel_logout_session_required';
/** The client metadata this module adds (oidc-provider's extraClientMetadata.properties). */
export const FRONTCHANNEL_METADATA = [FRONTCHANNEL_URI, FRONTCHANNEL_SESSION_REQUIRED];
/** The discovery members this module adds. */
export const FRONTCHANNEL_DISCOVERY = { frontchannel_logout_supported: true, frontchannel_logout_session_supported: true };
/** How long the page waits for frames that do not load before it goes on to the redirect. */
export const FRAME_TIMEOUT_MS = 5000;

function originOf(value) {
  try {
    return new URL(value).origin;
  } catch {
    return undefined;
  }
}

/** extraClientMetadata.validator's part for this module's metadata (throws InvalidClientMetadata). */
export function validateFrontchannelMetadata(key, value, metadata) {
  if (value === undefined) return;
  if (key === FRONTCHANNEL_SESSION_REQUIRED && typeof value !== 'boolean') {
    throw new errors.InvalidClientMetadata(`${FRONTCHANNEL_SESSION_REQUIRED} must be a boolean`);
  }
  if (key !== FRONTCHANNEL_URI) return;
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new errors.InvalidClientMetadata(`${FRONTCHANNEL_URI} must be an absolute URI`);
  }
  if (!['http:', 'https:'].includes(url.protocol) || url.hash || String(value).includes('#')) {
    throw new errors.InvalidClientMetadata(`${FRONTCHANNEL_URI} must be an http(s) URI without a fragment`);
  }
  const origins = (metadata?.redirect_uris ?? []).map(originOf);
  if (!origins.includes(url.origin)) {
    throw new errors.InvalidClientMetadata(`${FRONTCHANNEL_URI} must have the scheme, host and port of a redirect_uri`);
  }
}

/** The frontchannel_logout_uri to frame for a client, with iss and sid when it asked for them. */
function frameUrl(client, issuer, sid) {
  const url = new URL(client[FRONTCHANNEL_URI]);  // its own query is kept (section 2)
  if (client[FRONTCHANNEL_SESSION_REQUIRED] === true && sid) {
    url.searchParams.append('iss', issuer);
    url.searchParams.append('sid', sid);
  }
  return url.href;
}

function logoutPage(frames, target) {
  const iframes = frames.map(({ clientId, url }) => `<iframe class="frontchannel" data-client="${esc(clientId)}" src="${esc(url)}" title="Signing out of ${esc(clientId)}" width="360" height="56" style="display:block;border:1px solid #ccc;margin:.3em 0"></iframe>`).join('\n');
  return page('Signing out — devprovider', `
<p id="frontchannel-pending" data-frames="${frames.length}">Signing you out of ${frames.length} application(s)…</p>
${iframes}
<p class="note"><a id="frontchannel-continue" href="${esc(target)}">Continue</a></p>
<script>
(function () {
  var target = document.getElementById('frontchannel-continue').getAttribute('href');
  var frames = Array.prototype.slice.call(document.querySelectorAll('iframe.frontchannel'));
  var pending = frames.length, done = false;
  function go() { if (!done) { done = true; window.location.replace(target); } }
  frames.forEach(function (frame) { frame.addEventListener('load', function () { if (--pending <= 0) go(); }); });
  if (!pending) go();
  setTimeout(go, ${FRAME_TIMEOUT_MS});
})();
</script>`);
}

/**
 * The Koa middleware (provider.use) that turns a confirmed logout's redirect into the page of
 * frames. It reads the session before oidc-provider's confirm route ends it.
 */
export function frontchannelLogout(provider) {
  const ended = new WeakSet();
  provider.on('end_session.success', (ctx) => ended.add(ctx));
  const confirmPath = `${ROUTES.end_session}/confirm`;

  return async function frontchannelPage(ctx, next) {
    if (ctx.path !== confirmPath || ctx.method !== 'POST') {
      await next();
      return;
    }
    const before = await provider.Session.get(ctx);  // read only: never saved from here
    const authorizations = { ...(before?.authorizations ?? {}) };
    const initiator = before?.state?.clientId;
    await next();
    const target = ctx.response.get('location');
    if (!ended.has(ctx) || ctx.status !== 303 || !target) return;
    const everyClient = Boolean(ctx.oidc?.params?.logout);
    const frames = [];
    for (const [clientId, { sid } = {}] of Object.entries(authorizations)) {
      if (!everyClient && clientId !== initiator) continue;
      let client;
      try {
        client = await provider.Client.find(clientId);
      } catch {
        client = undefined;
      }
      if (!client?.[FRONTCHANNEL_URI]) continue;
      const url = frameUrl(client, provider.issuer, sid);
      frames.push({ clientId, url });
      record('frontchannel_logout', { client_id: clientId, sid: sid ?? null, url });
    }
    if (!frames.length) return;
    ctx.remove('Location');
    ctx.status = 200;
    ctx.type = 'html';
    ctx.body = logoutPage(frames, target);
  };
}
