/**
 * The login form's routes, served beside oidc-provider (which has no login UI of its own):
 * GET /interaction/:uid shows the form (or grants consent at once: every client is
 * first-party), POST /interaction/:uid/login checks username, password, one-time code and
 * organization membership, POST /interaction/:uid/abort cancels (error=access_denied).
 *
 * Security caveat: oidc-provider finds the interaction by the browser's interaction cookie;
 * the uid in the path must name that same interaction, else the request is refused.
 */
import {
  ACR_MFA, ACR_PWD, DEV_OTP, INVITATIONS, ORGANIZATIONS, checkPassword, findOrganization, requestedAcrs, sameSecret,
} from './accounts.mjs';
import { record, redact } from './events.mjs';
import { esc, loginPage, page, readForm, send } from './pages.mjs';

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

export async function handleInteraction(provider, req, res, uid, action) {
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
