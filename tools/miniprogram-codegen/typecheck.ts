// Compiled (never run) by generate.mjs: proves that the SDK's declarations give a
// TypeScript mini-program what it needs, and refuse what they should.
import { createClient, documents, type WxloginError, type LoginResult, type WxLike, type WebLoginRequest } from '../../clients/miniprogram/index';

declare const wx: WxLike;

async function example(): Promise<void> {
  const client = createClient({ endpoint: 'https://api.example.com/graphql', wx });

  // A generated document types the result and the variables.
  const { me } = await client.query(documents.Me);
  const openid: string = me.openid;
  const phone: string | null = me.phoneNumber;
  const ended: number = (await client.mutate(documents.LogoutAll, { keepCurrent: true })).logoutAll;
  await client.mutate(documents.UpdateProfile, { input: { nickname: 'Ming' } });

  // @ts-expect-error: Me has no such field
  me.password;
  // @ts-expect-error: a variable of the wrong type
  await client.mutate(documents.LogoutAll, { keepCurrent: 'yes' });
  // @ts-expect-error: a required variable missing
  await client.mutate(documents.RevokeSession, {});

  // A document of one's own, as text, with the result type given or not.
  const mine = await client.query<{ me: { id: string } }>('query Mine { me { id } }');
  const id: string = mine.me.id;
  const anything = await client.query('{ sessions { id } }', {});

  const login: LoginResult = await client.login();
  const isNew: boolean = login.isNewUser;
  const token: string | null = client.token();
  const loggedOut: boolean = await client.logout();

  // A web login's confirm page, opened by its code with onLoad's options or the scene.
  const asked: WebLoginRequest = await client.scanWebLogin({ scene: '0123456789abcdef0123456789abcdef' });
  const browser: string | null = asked.userAgent;
  const state: 'CONFIRMED' | 'WAITING' | 'SCANNED' | 'CANCELLED' | 'EXPIRED' = (await client.confirmWebLogin(asked.id)).state;
  await client.cancelWebLogin((await client.scanWebLogin('0123456789abcdef0123456789abcdef')).id);
  // @ts-expect-error: confirm takes the id, not the options
  await client.confirmWebLogin({ scene: '0123456789abcdef0123456789abcdef' });

  try {
    await client.query(documents.Sessions);
  } catch (e) {
    const err = e as WxloginError;
    if (err.code === 'RATE_LIMITED' && err.retryAfter !== undefined) {
      const seconds: number = err.retryAfter;
      void seconds;
    }
    const requestId: string | undefined = err.requestId;
    void requestId;
  }
  void [openid, phone, ended, id, anything, isNew, token, loggedOut, browser, state];
}

void example;
