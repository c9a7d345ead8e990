// A real OpenID provider (the npm package oidc-provider) on Cognito's routes and with
// Cognito-shaped ID tokens, for tests/browser_login.rs.
//
// Usage: node provider.mjs <private key PEM> <kid> <client_id> <client_secret>
// Prints its port on the first stdout line, then waits for POST /__setup with
// {"redirect_uri": …, "logout_uri": …, "id_token_ttl": seconds?} (Envoy's port is known only once Envoy is up) before it
// serves OpenID requests. Users sign in on the provider's own login form (devInteractions):
// any login name, any password; the account is <login>@example.com, email verified.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const [keyPath, kid, clientId, clientSecret] = process.argv.slice(2);
const jwk = { ...crypto.createPrivateKey(fs.readFileSync(keyPath)).export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };

let callback = null;
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/__setup') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const setup = JSON.parse(body);
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
  callback(req, res);
});

function makeProvider(issuer, { redirect_uri, logout_uri, id_token_ttl }) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirect_uri],
      post_logout_redirect_uris: [logout_uri],
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

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
  // The test reads only the first line and closes the pipe: the provider's notices go to stderr.
  console.log = console.info = console.warn = console.error;
});
