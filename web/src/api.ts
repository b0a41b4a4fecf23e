// The public API as this client uses it, through the gateway (same origin). Types come from
// the services' OpenAPI documents (src/api/*.ts, generated; CI checks they are current).
import type { components as Graph } from "./api/graph";
import type { components as Notifications } from "./api/notifications";
import type { components as Posts } from "./api/posts";
import type { components as Timelines } from "./api/timelines";
import type { components as Users } from "./api/users";

export type User = Users["schemas"]["UserPublic"];
export type TokenPair = Users["schemas"]["TokenPair"];
export type Post = Posts["schemas"]["PostRead"];
export type PostCreate = Posts["schemas"]["PostCreate"];
export type TimelinePost = Timelines["schemas"]["TimelinePost"];
export type Author = Timelines["schemas"]["Author"];
export type Counts = Graph["schemas"]["FollowCounts"];
export type Relationship = Graph["schemas"]["Relationship"];
export type Notification = Notifications["schemas"]["NotificationRead"];
export type UnreadCount = Notifications["schemas"]["UnreadCount"];
type Problem = Users["schemas"]["Problem"];

/** An RFC 9457 problem answer, with the text worth showing a person. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Partial<Problem>,
  ) {
    const field = problem.errors?.[0]?.message;
    super(problem.detail ?? field ?? problem.title ?? `HTTP ${status}`);
  }
}

// The access token lives only in this module's memory, out of reach of other scripts'
// storage reads. The refresh token is kept for the tab's life in sessionStorage so a reload
// keeps you signed in; docs/adr/0015-web-client.md explains that trade-off.
const REFRESH_KEY = "terrascale.refresh";
let accessToken: string | null = null;
let refreshing: Promise<boolean> | null = null;

export function hasSession(): boolean {
  return accessToken !== null || sessionStorage.getItem(REFRESH_KEY) !== null;
}

function keep(tokens: TokenPair): void {
  accessToken = tokens.access_token;
  sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
}

export function bearer(): string | null {
  return accessToken;
}

/** A new access token from the refresh token (rotated); false when the session is over. */
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    const refreshToken = sessionStorage.getItem(REFRESH_KEY);
    if (refreshToken === null) return false;
    const response = await fetch("/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    });
    if (!response.ok) {
      forget();
      return false;
    }
    keep((await response.json()) as TokenPair);
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function forget(): void {
  accessToken = null;
  sessionStorage.removeItem(REFRESH_KEY);
}

async function problemOf(response: Response): Promise<ApiError> {
  const type = response.headers.get("content-type") ?? "";
  const body = type.includes("json") ? ((await response.json()) as Partial<Problem>) : {};
  return new ApiError(response.status, body);
}

/** A JSON call with the access token; one refresh and retry when it has expired. */
async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  return (await exchange<T>(method, path, body)).body;
}

/** A page of a list and the cursor of the next one (from its `Link: rel="next"`, if any). */
export interface Paged<T> {
  items: T[];
  next: Page | null;
}

async function page<T>(path: string, cursor: Page): Promise<Paged<T>> {
  const { body, response } = await exchange<T[]>("GET", `${path}?${query(cursor)}`);
  return { items: body, next: nextPage(response.headers.get("link")) };
}

function nextPage(link: string | null): Page | null {
  const next = link?.split(",").find((part) => /rel="next"/.test(part));
  const url = next?.match(/<([^>]+)>/)?.[1];
  if (url === undefined) return null;
  const params = new URL(url, location.origin).searchParams;
  const maxId = params.get("max_id");
  return maxId === null ? null : { max_id: maxId };
}

async function exchange<T>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ body: T; response: Response }> {
  const send = () => {
    const headers: Record<string, string> = {};
    if (accessToken !== null) headers.authorization = `Bearer ${accessToken}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    return fetch(path, init);
  };
  let response = await send();
  if (response.status === 401 && (await refresh())) response = await send();
  if (!response.ok) throw await problemOf(response);
  return { body: (response.status === 204 ? undefined : await response.json()) as T, response };
}

const id = (value: string) => encodeURIComponent(value);

export const api = {
  async signUp(username: string, password: string): Promise<void> {
    await call("POST", "/users/", { username, password });
  },
  async signIn(username: string, password: string): Promise<void> {
    const response = await fetch("/auth/token", {
      method: "POST",
      body: new URLSearchParams({ username, password }),
    });
    if (!response.ok) throw await problemOf(response);
    keep((await response.json()) as TokenPair);
  },
  async signOut(): Promise<void> {
    const refreshToken = sessionStorage.getItem(REFRESH_KEY);
    forget();
    if (refreshToken !== null) await call("POST", "/auth/logout", { refresh_token: refreshToken });
  },
  me: () => call<User>("GET", "/users/me"),
  user: (userId: string) => call<User>("GET", `/users/${id(userId)}`),
  userByName: (username: string) => call<User>("GET", `/users/by-username/${id(username)}`),
  users: (ids: string[]) =>
    ids.length === 0
      ? Promise.resolve([])
      : call<User[]>("GET", `/users?ids=${ids.map(id).join(",")}`),
  counts: (userId: string) => call<Counts>("GET", `/users/${id(userId)}/counts`),
  relationship: (userId: string, otherId: string) =>
    call<Relationship>("GET", `/users/${id(userId)}/relationship/${id(otherId)}`),
  follow: (userId: string, targetId: string) =>
    call<Relationship>("PUT", `/users/${id(userId)}/following/${id(targetId)}`),
  unfollow: (userId: string, targetId: string) =>
    call<Relationship>("DELETE", `/users/${id(userId)}/following/${id(targetId)}`),
  createPost: (post: PostCreate) => call<Post>("POST", "/posts", post),
  deletePost: (postId: string) => call<void>("DELETE", `/posts/${id(postId)}`),
  posts: (ids: string[]) =>
    ids.length === 0
      ? Promise.resolve([])
      : call<Post[]>("GET", `/posts?ids=${ids.map(id).join(",")}`),
  userPosts: (userId: string, cursor: Page) => page<Post>(`/users/${id(userId)}/posts`, cursor),
  home: (cursor: Page) => page<TimelinePost>("/timelines/home", cursor),
  notifications: (cursor: Page) => page<Notification>("/notifications", cursor),
  unreadCount: () => call<UnreadCount>("GET", "/notifications/unread_count"),
  markAllRead: () => call<UnreadCount>("POST", "/notifications/read", {}),
};

/** Cursor pagination as every list of the API takes it: ids are time-sortable strings. */
export interface Page {
  limit?: number;
  max_id?: string;
  since_id?: string;
}

function query(page: Page): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(page)) {
    if (value !== undefined) params.set(key, String(value));
  }
  return params.toString();
}
