// Types for wxlogin's mini-program SDK (index.js). Written by hand; the schema's types
// are generated into schema.d.ts, each client document's result and variables into
// operations.d.ts, and the documents themselves into documents.d.ts.
import type { LoginMutation, ScanWebLoginMutation } from './operations';
import * as documents from './documents';

export { documents };

/**
 * A GraphQL document (its text) that knows the types of its result and variables, as
 * the ones in `documents` do; `query` and `mutate` infer both from it. The two fields
 * exist only for the type checker.
 */
export type TypedDocument<TData, TVariables> = string & {
  readonly __resultType: TData;
  readonly __variablesType: TVariables;
};

/**
 * A document's text without types, such as one written inline. (A TypedDocument is not
 * one, so that wrong variables for it are an error rather than a fall back to this.)
 */
export type UntypedDocument = string & { readonly __resultType?: never };

/** What a successful login gives: the token, when it ends, the user. */
export type LoginResult = LoginMutation['login'];

/**
 * A web login as the mini-program sees it: who asks to log in on a computer (the
 * browser's User-Agent and address, when it asked) and where it stands.
 */
export type WebLoginRequest = ScanWebLoginMutation['scanWebLogin'];

/**
 * What scanWebLogin takes: the scene of the mini-program code, or the options WeChat
 * opened the page with (onLoad's, with `scene` URI-encoded; or onLaunch's and
 * wx.getLaunchOptionsSync's, with it under `query`).
 */
export type WebLoginScene = string | { scene?: unknown; query?: { scene?: string } };

/** The codes an SDK error carries: the server's, and the SDK's own. */
export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'INVALID_CODE'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'WECHAT_UNAVAILABLE'
  | 'SESSION_KEY_STALE'
  | 'INTERNAL'
  | 'PERSISTED_QUERY_NOT_FOUND'
  | 'PERSISTED_QUERY_NOT_SUPPORTED'
  | 'QUERY_NOT_ALLOWED'
  /** wx.request failed: no network, DNS, TLS, timeout, or the server is down. */
  | 'NETWORK_ERROR'
  /** Something answered that is not GraphQL (a proxy's error page, say). */
  | 'BAD_RESPONSE'
  /** wx.login failed or gave no code. */
  | 'WX_LOGIN_FAILED';

/** One entry of a GraphQL answer's `errors`. */
export interface GraphQLError {
  message: string;
  path?: ReadonlyArray<string | number>;
  locations?: ReadonlyArray<{ line: number; column: number }>;
  extensions?: { code?: string; retryAfter?: number; [key: string]: unknown };
}

/** What `query`, `mutate`, `login` and `logout` reject with. */
export interface WxloginError extends Error {
  name: 'WxloginError';
  code: ErrorCode;
  /** The endpoint the request went to. */
  endpoint: string;
  /** RATE_LIMITED: seconds to wait before trying again. */
  retryAfter?: number;
  /** The answer's GraphQL errors; empty when there was no GraphQL answer. */
  errors: GraphQLError[];
  /** The answer's data when some of it came through. */
  data?: unknown;
  /** The HTTP status, when there was an answer. */
  status?: number;
  /** The answer's X-Request-Id: quote it when reporting a problem; the server log has it. */
  requestId?: string;
  /** NETWORK_ERROR and WX_LOGIN_FAILED: what wx.request or wx.login reported. */
  wxError?: unknown;
}

/** The parts of `wx` the SDK uses. */
export interface WxLike {
  login(options: {
    success(res: { code: string }): void;
    fail(err: { errMsg: string }): void;
  }): void;
  request(options: {
    url: string;
    method: 'POST';
    header: Record<string, string>;
    data: { query: string; variables: Record<string, unknown> };
    dataType: 'json';
    timeout?: number;
    success(res: { statusCode: number; header: Record<string, string>; data: unknown }): void;
    fail(err: { errMsg: string }): void;
  }): unknown;
  getStorageSync(key: string): unknown;
  setStorageSync(key: string, value: string): void;
  removeStorageSync(key: string): void;
}

export interface ClientOptions {
  /** The full URL of the server's /graphql, such as https://api.example.com/graphql. */
  endpoint: string;
  /** This mini-program's appid, when the server serves several. */
  appid?: string;
  /** Where the token is kept with wx.setStorageSync. Default "wxlogin_token". */
  storageKey?: string;
  /** Retries of a request answered RATE_LIMITED or WECHAT_UNAVAILABLE. Default 2. */
  retries?: number;
  /** The longest retryAfter (seconds) waited out; a longer one rejects at once. Default 60. */
  maxWait?: number;
  /** wx.request's timeout in milliseconds. Default: the app's networkTimeout. */
  timeout?: number;
  /** The wx object. Default: the global wx. */
  wx?: WxLike;
  /** How to wait before a retry. Default: setTimeout. */
  sleep?(ms: number): Promise<void>;
  /** The time in milliseconds, to tell a code's age. Default: Date.now. */
  now?(): number;
}

export interface Client {
  /** Runs a query with the session, logging in first when there is none. */
  query<TData, TVariables>(document: TypedDocument<TData, TVariables>, variables?: TVariables): Promise<TData>;
  query<TData = any>(document: UntypedDocument, variables?: Record<string, unknown>): Promise<TData>;
  /** Runs a mutation with the session, logging in first when there is none. */
  mutate<TData, TVariables>(document: TypedDocument<TData, TVariables>, variables?: TVariables): Promise<TData>;
  mutate<TData = any>(document: UntypedDocument, variables?: Record<string, unknown>): Promise<TData>;
  /** Logs in now (or joins the login under way), and resolves with what the login gave. */
  login(): Promise<LoginResult>;
  /** Ends the session on the server and forgets it here; false when there was none. */
  logout(): Promise<boolean>;
  /**
   * wx.request to another of the team's services behind a gateway that checks the
   * token with wxlogin (/auth/verify): with the session's token (logging in first when
   * there is none); a 401 logs in again, once, and retries once. Resolves with
   * wx.request's answer whatever its status; rejects with NETWORK_ERROR when the
   * request cannot be made.
   */
  request(options: ServiceRequest): Promise<ServiceResponse>;
  /**
   * Everything the server holds about the user (the myData query): user, identities,
   * sessions, auditEvents. Logs in first when there is no session.
   */
  exportMyData(): Promise<Record<string, unknown>>;
  /**
   * Deletes the user's account on the server (every session, identity, profile field
   * and phone number) and forgets the stored token; the next call logs in as a new user.
   */
  deleteAccount(): Promise<boolean>;
  /**
   * The confirm page of a web login: marks the web login whose code the person scanned
   * as scanned by this user and resolves with who asked. Rejects with BAD_USER_INPUT
   * (its message says which, for the person) when the code is unknown, expired,
   * cancelled, confirmed already or another user's, and when `scene` has none. Logs in
   * first when there is no session.
   */
  scanWebLogin(scene: WebLoginScene): Promise<WebLoginRequest>;
  /** Logs the browser that asked in as this user (a web login is confirmed once). */
  confirmWebLogin(id: string): Promise<WebLoginRequest>;
  /** Refuses the web login: the browser is told, and logs in as nobody. */
  cancelWebLogin(id: string): Promise<WebLoginRequest>;
  /** The session token, or null: for wx.uploadFile and other requests made by hand. */
  token(): string | null;
}

/** What request takes: wx.request's options, without its callbacks. */
export interface ServiceRequest {
  url: string;
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS';
  data?: unknown;
  header?: Record<string, string>;
  dataType?: string;
  responseType?: string;
  timeout?: number;
}

/** wx.request's answer. */
export interface ServiceResponse {
  statusCode: number;
  data: unknown;
  header: Record<string, string>;
}

export function createClient(options: ClientOptions): Client;
