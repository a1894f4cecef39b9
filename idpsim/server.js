// A real OpenID Connect provider for mdmportal's tests and demo, the way applesim stands in for
// Apple: panva/oidc-provider (OpenID Certified), with a few users whose `groups` claim maps to
// the portal's roles. It listens on 127.0.0.1 only and keeps everything in memory.
//
//   node server.js --port 8002 --client-id mdmportal --client-secret-file secret \
//        --redirect-uri http://127.0.0.1:8000/accounts/oidc/demo/login/callback/ \
//        --post-logout-redirect-uri http://127.0.0.1:8000/accounts/login/
import http from 'node:http';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '8002' },
    'client-id': { type: 'string', default: 'mdmportal' },
    'client-secret': { type: 'string', default: '' },
    'client-secret-file': { type: 'string', default: '' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
  },
});
const clientSecret = args['client-secret-file']
  ? readFileSync(args['client-secret-file'], 'utf8').trim()
  : args['client-secret'];
if (!clientSecret || args['redirect-uri'].length === 0) {
  console.error('idpsim needs --client-secret(-file) and at least one --redirect-uri');
  process.exit(2);
}

// The demo directory: one admin, one viewer, and one person the portal grants no role.
export const USERS = {
  'ada.admin': { password: 'ada-demo-password', name: 'Ada Admin', email: 'ada.admin@springfield.example', groups: ['mdm-admins', 'staff'] },
  'victor.viewer': { password: 'victor-demo-password', name: 'Victor Viewer', email: 'victor.viewer@springfield.example', groups: ['mdm-viewers', 'staff'] },
  'nora.norole': { password: 'nora-demo-password', name: 'Nora Norole', email: 'nora.norole@springfield.example', groups: ['staff'] },
};

const issuer = `http://127.0.0.1:${args.port}`;
const clientId = args['client-id'];

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: args['redirect-uri'],
    post_logout_redirect_uris: args['post-logout-redirect-uri'],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  // `groups` rides on the profile scope, so a relying party asking for the usual
  // "openid profile email" gets it from the userinfo endpoint, as Okta's groups claim does.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
  },
  scopes: ['openid', 'profile', 'email'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const user = USERS[sub];
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: user.name,
          preferred_username: sub,
          email: user.email,
          email_verified: true,
          groups: user.groups,
        };
      },
    };
  },
  // The portal is the only, first-party client: no consent screen, as a company IdP is set up.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email');
    await grant.save();
    return grant;
  },
  cookies: { keys: [clientSecret] },
  ttl: { Session: 8 * 3600, Interaction: 600, Grant: 8 * 3600 },
});

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(uid, { error = '', login = '' } = {}) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Demo IdP: sign in</title></head>
<body>
<main>
<h1>Demo IdP</h1>
<p>A local OpenID Connect provider for mdmportal's demo and tests.</p>
${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<label>Username <input name="login" autocomplete="username" value="${escape(login)}" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in to Demo IdP</button>
</form>
</main>
</body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    res.writeHead(400).end('This sign-in has expired: start again from the portal.');
    return;
  }
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(uid, { login: details.params.login_hint || '' }));
    return;
  }
  const form = await readForm(req);
  const login = form.get('login') || '';
  const user = Object.hasOwn(USERS, login) ? USERS[login] : undefined;
  if (!user || user.password !== form.get('password')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(uid, { error: 'Wrong username or password.', login }));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: login } }, {
    mergeWithLastSubmission: false,
  });
}

const handle = provider.callback();
const server = http.createServer(async (req, res) => {
  const match = /^\/interaction\/([^/?]+)$/.exec(req.url.split('?')[0]);
  if (!match) {
    handle(req, res);
    return;
  }
  try {
    await interaction(req, res, match[1]);
  } catch (error) {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`This sign-in cannot go on (${error.message}): start again from the portal.`);
  }
});
server.listen(Number(args.port), '127.0.0.1', () => {
  console.log(`idpsim: OpenID Connect provider at ${issuer} for client ${clientId}`);
});
