/**
 * The provider's signing keys: a JWKS file (--keys; its first key signs), or one fresh RS256
 * key with a random kid; keys of a previous generation (--previous-keys) published beside
 * them for verification after a rotation; and --write-keys, which saves the whole set.
 *
 * Security caveat: these are private keys. --write-keys writes them with mode 0600 for the
 * test harness that rotates them; nothing else ever leaves the process.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import { fail, readJson } from './options.mjs';

function generateSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `dev-${crypto.randomBytes(8).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

/** The JWKS (private keys) oidc-provider signs with and publishes; fails on a bad file. */
export function loadSigningKeys({ keysFile, previousKeysFile, writeKeysFile }) {
  let jwks;
  if (keysFile) {
    jwks = readJson(keysFile, 'signing keys');
    if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) fail(`${keysFile} must be a JWKS: {"keys": [...]}`);
    if (!jwks.keys.some((k) => k.d)) fail(`${keysFile} holds no private key ("d")`);
  } else {
    jwks = { keys: [generateSigningKey()] };
  }
  if (previousKeysFile) {
    const previous = readJson(previousKeysFile, 'previous signing keys');
    if (!Array.isArray(previous?.keys)) fail(`${previousKeysFile} must be a JWKS: {"keys": [...]}`);
    const seen = new Set(jwks.keys.map((k) => k.kid));
    jwks = { keys: [...jwks.keys, ...previous.keys.filter((k) => !seen.has(k.kid))] };
  }
  if (writeKeysFile) {
    fs.writeFileSync(writeKeysFile, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  }
  return jwks;
}
