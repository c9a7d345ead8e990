// A real OpenID provider (the npm package oidc-provider) on Cognito's routes and with
// Cognito-shaped ID tokens, for tests/browser_login.rs and the demo (scripts/demo.sh).
//
// Usage: node provider.mjs <private key PEM> <kid> <client_id> <client_secret> [options]
// Prints its port on the first stdout line. Without options it listens on a port the OS
// chooses and waits for POST /__setup with
// {"redirect_uri": …, "logout_uri": …, "id_token_ttl": seconds?, "admin_scope": bool?} (Envoy's
// port is known only once Envoy is up) before it serves OpenID requests; redirect_uri and
// logout_uri may also be lists. Options (the demo's, which knows Envoy's port in advance):
//   --port N                listen on 127.0.0.1:N instead (0: any free port)
//   --redirect-uri URI      set up at start, without /__setup: a redirect URI (repeatable)
//   --logout-uri URI        … and a post-logout URI (repeatable)
// Users sign in on the provider's own login form (devInteractions): any login name, any
// password; the account is <login>@example.com, email verified. The issuer is
// http://localhost:<port>.
// As Cognito's hosted UI, the token endpoint answers with a Cognito-shaped access token (a
// JWT: sub, client_id, token_use "access", scope, username, jti), signed with the same key;
// its scope holds aws.cognito.signin.user.admin when the setup says the app client grants it
// ("admin_scope": true), as Cognito does when the client allows the scope and the sign-in
// asks for it.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: '0' },
    'redirect-uri': { type: 'string', multiple: true },
    'logout-uri': { type: 'string', multiple: true },
  },
});
const [keyPath, kid, clientId, clientSecret] = positionals;
const port = Number(options.port);
if (positionals.length !== 4 || !Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: node provider.mjs <key PEM> <kid> <client_id> <client_secret> [--port N] [--redirect-uri URI]… [--logout-uri URI]…');
  process.exit(2);
}
const jwk = { ...crypto.createPrivateKey(fs.readFileSync(keyPath)).export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };

const privateKey = crypto.createPrivateKey(fs.readFileSync(keyPath));
const b64url = (data) => Buffer.from(data).toString('base64url');

// A Cognito-shaped access token for the user of `idToken`.
function accessToken(idToken, adminScope) {
  const id = JSON.parse(Buffer.from(idToken.split('.')[1], 'base64url'));
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    sub: id.sub, iss: id.iss, client_id: clientId, token_use: 'access',
    scope: adminScope ? 'openid email profile aws.cognito.signin.user.admin' : 'openid email profile',
    username: id['cognito:username'] ?? id.sub, auth_time: id.auth_time ?? now,
    iat: now, exp: id.exp, jti: crypto.randomUUID(),
  };
  const signed = `${b64url(JSON.stringify({ alg: 'RS256', kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${b64url(crypto.sign('sha256', Buffer.from(signed), privateKey))}`;
}

// The token endpoint's answers carry a Cognito-shaped access token instead of the provider's.
function cognitoAccessTokens(res, adminScope) {
  const setHeader = res.setHeader.bind(res);
  const end = res.end.bind(res);
  res.setHeader = (name, value) => (name.toLowerCase() === 'content-length' ? res : setHeader(name, value));
  res.end = (chunk, ...rest) => {
    try {
      const body = JSON.parse(String(chunk));
      if (body.id_token) {
        body.access_token = accessToken(body.id_token, adminScope);
        return end(JSON.stringify(body), ...rest);
      }
    } catch { /* not JSON: as it is */ }
    return end(chunk, ...rest);
  };
}

let callback = null;
let adminScope = false;
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/__setup') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const setup = JSON.parse(body);
      adminScope = setup.admin_scope === true;
      callback = makeProvider(`http://localhost:${server.address().port}`, setup).callback();
      res.end('ready');
    });
    return;
  }
  if (!callback) {
    res.statusCode = 503;
    res.end('not set up');
    return;
  }
  if (req.method === 'POST' && req.url.startsWith('/oauth2/token')) {
    cognitoAccessTokens(res, adminScope);
  }
  callback(req, res);
});

function makeProvider(issuer, { redirect_uri, logout_uri, id_token_ttl }) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [].concat(redirect_uri),
      post_logout_redirect_uris: [].concat(logout_uri ?? []),
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [jwk] },
    // Cognito's endpoint paths.
    routes: {
      authorization: '/oauth2/authorize',
      token: '/oauth2/token',
      userinfo: '/oauth2/userInfo',
      end_session: '/logout',
      revocation: '/oauth2/revoke',
      jwks: '/.well-known/jwks.json',
    },
    pkce: { required: () => true },
    // Cognito puts these in the ID token.
    claims: {
      openid: ['sub', 'token_use', 'cognito:username'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    conformIdTokenClaims: false,
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({
        sub: id,
        token_use: 'id',
        'cognito:username': id,
        email: `${id}@example.com`,
        email_verified: true,
        name: id,
      }),
    }),
    // A confidential first-party client: no consent screen (as Cognito's hosted UI).
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      // A grant ends when its refresh token is revoked (at logout): then a new one.
      const existing = grantId && await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
    features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
    // As Cognito: a refresh token with every code exchange, and ID tokens of a set lifetime
    // (the refresh test makes them short).
    issueRefreshToken: async () => true,
    ttl: { IdToken: id_token_ttl ?? 3600, AccessToken: id_token_ttl ?? 3600 },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  });
  provider.on('server_error', (ctx, err) => console.error('provider server_error', err));
  return provider;
}

server.listen(port, '127.0.0.1', () => {
  if (options['redirect-uri']) {
    callback = makeProvider(`http://localhost:${server.address().port}`, {
      redirect_uri: options['redirect-uri'], logout_uri: options['logout-uri'],
    }).callback();
  }
  process.stdout.write(`${server.address().port}\n`);
  // The test reads only the first line and closes the pipe: the provider's notices go to stderr.
  console.log = console.info = console.warn = console.error;
});
