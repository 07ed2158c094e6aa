/**
 * What the provider's own pages look like and how its custom routes answer: the HTML page
 * frame, the login form, the sign-out question and confirmation (oidc-provider's
 * logoutSource / postLogoutSuccessSource), its error page, and the raw Node responses and
 * form reading of the routes served outside oidc-provider (login form, /_dev/events).
 *
 * Security caveat: every value put into HTML goes through esc(); form bodies are limited to
 * 64 KiB.
 */
import { DEV_OTP } from './accounts.mjs';

export function esc(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}label,input,button{display:block;margin:.4em 0}
.error{color:#b00020}.note{color:#555;font-size:.9em}</style>
</head>
<body>
<h1>${esc(title)}</h1>
${body}
</body>
</html>
`;
}

function otpField(mfaRequested) {
  const field = `<label for="otp">One-time code${mfaRequested ? '' : ' (optional)'}</label>
<input id="otp" name="otp" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]*">`;
  if (mfaRequested) {
    return `<p class="note" id="mfa-requested">This application asks for multi-factor authentication: enter your one-time code.</p>\n${field}`;
  }
  return `<details id="otp-details"><summary>Sign in with a one-time code</summary>\n${field}\n</details>`;
}

export function loginPage(uid, { clientId, clientName, connection, organization, login = '', error, mfaRequested = false } = {}) {
  const who = clientName ? `${clientName} (${clientId})` : clientId;
  return page('Sign in — devprovider', `
<p class="note">Development OpenID Provider. Signing in to <strong id="client">${esc(who)}</strong>${connection ? ` with connection <strong id="connection">${esc(connection)}</strong>` : ''}${organization ? ` for the organization <strong id="organization">${esc(organization)}</strong>` : ''}.</p>
${error ? `<p class="error" id="error" data-error="${esc(error)}">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="login">Username</label>
<input id="login" name="login" type="text" required value="${esc(login)}" ${login ? '' : 'autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" required ${login ? 'autofocus' : ''}>
${otpField(mfaRequested)}
<button type="submit" id="submit">Sign in</button>
</form>
<form id="abort-form" method="post" action="/interaction/${esc(uid)}/abort">
<button type="submit" id="abort">Cancel</button>
</form>
<p class="note">Test users: alice / alice-password, bob / bob-password. One-time code: ${esc(DEV_OTP)}.</p>`);
}

export async function logoutSource(ctx, form) {
  ctx.type = 'html';
  ctx.body = page('Sign out — devprovider', `
<p id="logout-question">Do you want to sign out from ${esc(ctx.host)}?</p>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout" id="logout-yes">Yes, sign me out</button>
<button type="submit" form="op.logoutForm" id="logout-no">No, stay signed in</button>`);
}

export async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  const display = ctx.oidc.client?.clientName || ctx.oidc.client?.clientId;
  ctx.body = page('Signed out — devprovider', `<p id="logout-success">Your sign-out${display ? ` from ${esc(display)}` : ''} was successful.</p>`);
}

export async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Error — devprovider', Object.entries(out)
    .map(([key, value]) => `<p><strong>${esc(key)}</strong>: <span class="${esc(key)}">${esc(value)}</span></p>`)
    .join('\n'));
}

// raw HTTP helpers for the custom routes

export function send(res, status, body, type = 'text/html; charset=utf-8', headers = {}) {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

export function sendJson(res, status, value) {
  send(res, status, `${JSON.stringify(value)}\n`, 'application/json; charset=utf-8');
}

export async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}
