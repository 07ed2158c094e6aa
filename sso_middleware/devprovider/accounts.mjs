/**
 * Who can sign in, and what they are: the two users with their claims and passwords, the
 * one-time code, the two authentication levels (acr) a login reaches, and the emulated
 * Auth0 Organizations with their members and invitations (checked as authorize parameters).
 * Membership changes at run time: signing in through an invitation makes the user a member.
 *
 * Security caveat: the passwords and the code are fixed and public (server.mjs's header and
 * the login page print them); they are compared in constant time (sameSecret) all the same,
 * as a real provider's must be.
 */
import * as crypto from 'node:crypto';

import { errors } from 'oidc-provider';

// a namespaced custom claim, the way Auth0 Actions add roles to tokens
export const ROLES_CLAIM = 'https://example.com/roles';

export const USERS = {
  alice: {
    password: 'alice-password',
    claims: {
      name: 'Alice Example',
      given_name: 'Alice',
      family_name: 'Example',
      nickname: 'alice',
      preferred_username: 'alice',
      email: 'alice@example.com',
      email_verified: true,
      [ROLES_CLAIM]: ['admin', 'staff'],
    },
  },
  bob: {
    password: 'bob-password',
    claims: {
      name: 'Bob Example',
      given_name: 'Bob',
      family_name: 'Example',
      nickname: 'bob',
      preferred_username: 'bob',
      email: 'bob@example.com',
      email_verified: true,
      [ROLES_CLAIM]: ['staff'],
    },
  },
};

// --- Auth0 Organizations (emulated) ---

export const ORGANIZATIONS = {
  org_acme: { name: 'acme', displayName: 'Acme', members: new Set(['alice']) },
  org_globex: { name: 'globex', displayName: 'Globex', members: new Set(['bob']) },
};
export const INVITATIONS = { inv_acme_bob: 'org_acme', inv_globex_alice: 'org_globex' };

/** The organization id an "organization" parameter names (an id, or a name compared case-insensitively). */
export function findOrganization(value) {
  if (typeof value !== 'string' || !value) return undefined;
  if (Object.hasOwn(ORGANIZATIONS, value)) return value;
  return Object.keys(ORGANIZATIONS).find((id) => ORGANIZATIONS[id].name === value.toLowerCase());
}

/** Authorize parameter checks, like Auth0's: unknown organizations and mismatched invitations are refused. */
export const ORGANIZATION_PARAMS = {
  organization(ctx, value) {
    if (value !== undefined && !findOrganization(value)) {
      throw new errors.InvalidRequest('parameter organization is invalid: no such organization');
    }
  },
  invitation(ctx, value) {
    if (value === undefined) return;
    const org = Object.hasOwn(INVITATIONS, value) ? INVITATIONS[value] : undefined;
    if (!org) throw new errors.InvalidRequest('parameter invitation is invalid: no such invitation');
    if (findOrganization(ctx.oidc.params.organization) !== org) {
      throw new errors.InvalidRequest('parameter invitation is invalid: it is for another organization');
    }
  },
};

export function sameSecret(expected, given) {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function checkPassword(login, password) {
  const user = Object.hasOwn(USERS, login) ? USERS[login] : undefined;
  return Boolean(user) && sameSecret(user.password, password);
}

// --- authentication levels (step-up) ---

export const ACR_PWD = 'urn:dev:loa:pwd';
export const ACR_MFA = 'urn:dev:loa:mfa';
export const ACR_VALUES = [ACR_PWD, ACR_MFA];
/** The one-time code of every user (a stand-in for a TOTP app). */
export const DEV_OTP = '123456';

export function requestedAcrs(acrValues) {
  return typeof acrValues === 'string' ? acrValues.split(' ').filter(Boolean) : [];
}
