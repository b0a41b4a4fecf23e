// The TerraScale web client: a few pages over the public API, routed by the URL's hash.
import {
  api,
  ApiError,
  hasSession,
  refresh,
  type Notification,
  type Page,
  type Paged,
  type Post,
  type TimelinePost,
  type User,
} from "./api";
import { codePoints, h, richText, timeAgo } from "./dom";
import { followNotifications } from "./stream";

const MAX_POST_CODE_POINTS = 500;
const PAGE_SIZE = 20;
const NEW_POSTS_POLL_MILLISECONDS = 5000;

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
const badge = document.getElementById("badge") as HTMLElement;
const notificationsLink = document.getElementById("notifications-link") as HTMLAnchorElement;
const status = document.getElementById("status") as HTMLElement;

let me: User | null = null;
let unread = 0;
let session: AbortController | null = null; // ends the live stream on sign-out
let page: AbortController | null = null; // ends the current page's timers and observers
let onLiveNotification: ((notification: Notification) => void) | null = null;

function say(message: string): void {
  status.textContent = message;
}

function showError(error: unknown): void {
  say(error instanceof Error ? error.message : "Something went wrong.");
}

function setUnread(count: number): void {
  unread = Math.max(0, count);
  badge.textContent = String(unread);
  badge.hidden = unread === 0;
  notificationsLink.setAttribute(
    "aria-label",
    unread === 0 ? "Notifications" : `Notifications, ${unread} unread`,
  );
}

async function startSession(): Promise<void> {
  me = await api.me();
  nav.hidden = false;
  session = new AbortController();
  setUnread((await api.unreadCount()).count);
  void followNotifications((notification) => {
    if (onLiveNotification !== null) onLiveNotification(notification);
    else setUnread(unread + 1);
  }, session.signal);
}

function endSession(): void {
  session?.abort();
  session = null;
  me = null;
  nav.hidden = true;
  setUnread(0);
}

// ---- pages -------------------------------------------------------------------------------

function mount(title: string, ...children: Node[]): void {
  page?.abort();
  page = new AbortController();
  onLiveNotification = null;
  document.title = `${title} · TerraScale`;
  main.replaceChildren(...children);
  say("");
}

function authPage(mode: "login" | "signup"): void {
  const signingUp = mode === "signup";
  const username = h("input", {
    id: "username",
    name: "username",
    autocomplete: "username",
    required: true,
    minlength: "3",
    maxlength: "30",
    pattern: "[A-Za-z0-9_]{3,30}",
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: signingUp ? "new-password" : "current-password",
    required: true,
    minlength: "8",
    maxlength: "128",
  });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card auth" },
    h("h1", {}, signingUp ? "Create your account" : "Sign in"),
    h("label", { for: "username" }, "Username"),
    username,
    signingUp && h("p", { class: "hint" }, "3-30 letters, digits or underscores."),
    h("label", { for: "password" }, "Password"),
    password,
    error,
    h("button", { type: "submit" }, signingUp ? "Sign up" : "Sign in"),
    h(
      "p",
      {},
      signingUp ? "Have an account? " : "New here? ",
      h("a", { href: signingUp ? "#/login" : "#/signup" }, signingUp ? "Sign in" : "Sign up"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      if (signingUp) await api.signUp(username.value, password.value);
      await api.signIn(username.value, password.value);
      await startSession();
      location.hash = "#/";
    } catch (failure) {
      error.textContent = failure instanceof Error ? failure.message : "Could not sign in.";
    }
  });
  mount(signingUp ? "Sign up" : "Sign in", form);
  username.focus();
}

/** A list that loads its next page when its end scrolls into view (cursor pagination);
 * returns how to put newer items at its top. */
function feed<T>(
  list: HTMLElement,
  load: (cursor: Page) => Promise<Paged<T>>,
  render: (item: T) => Node,
  empty: string,
): (...items: Node[]) => void {
  const sentinel = h("p", { class: "more", "aria-hidden": "true" });
  list.after(sentinel);
  let next: Page | null = { limit: PAGE_SIZE };
  let loading = false;
  const observer = new IntersectionObserver(async (entries) => {
    if (!entries.some((entry) => entry.isIntersecting) || loading || next === null) return;
    loading = true;
    try {
      const result = await load(next);
      list.append(...result.items.map(render));
      next = result.next === null ? null : { ...result.next, limit: PAGE_SIZE };
      if (next === null) {
        observer.disconnect();
        sentinel.textContent = list.childElementCount === 0 ? empty : "";
      }
    } catch (error) {
      showError(error);
    } finally {
      loading = false;
    }
    // The new items may not fill the screen: look again.
    observer.unobserve(sentinel);
    if (next !== null) observer.observe(sentinel);
  });
  observer.observe(sentinel);
  page?.signal.addEventListener("abort", () => observer.disconnect());
  return (...items) => {
    list.prepend(...items);
    if (next === null) sentinel.textContent = "";
  };
}

function postItem(post: Post | TimelinePost, author: User | TimelinePost["author"]): HTMLElement {
  const mentioned = new Map(post.mentions.map((m) => [m.username.toLowerCase(), m.username]));
  const name = author?.display_name || author?.username || "someone";
  const handle = author ? `@${author.username}` : "";
  const item = h(
    "li",
    { class: "post", id: `post-${post.id}` },
    h(
      "article",
      { "aria-label": `Post by ${name}` },
      h(
        "header",
        {},
        author
          ? h("a", { class: "author", href: `#/u/${encodeURIComponent(author.username)}` }, name)
          : h("span", { class: "author" }, name),
        h("span", { class: "handle" }, handle),
        h("time", { datetime: post.created_at, title: post.created_at }, timeAgo(post.created_at)),
      ),
      h("p", { class: "text" }, ...richText(post.text, mentioned)),
    ),
  );
  if (me !== null && post.author_id === me.id) {
    const remove = h("button", { type: "button", class: "link danger" }, "Delete");
    remove.setAttribute("aria-label", "Delete this post");
    remove.addEventListener("click", async () => {
      if (!confirm("Delete this post?")) return;
      try {
        await api.deletePost(post.id);
        item.remove();
        say("Post deleted.");
      } catch (error) {
        showError(error);
      }
    });
    item.querySelector("article")?.append(h("footer", {}, remove));
  }
  return item;
}

function composeBox(onPosted: (post: Post) => void): HTMLElement {
  const text = h("textarea", { id: "compose", name: "text", rows: "3", required: true });
  const count = h("span", { id: "compose-count", class: "count" });
  const submit = h("button", { type: "submit" }, "Post");
  const update = () => {
    const left = MAX_POST_CODE_POINTS - codePoints(text.value);
    count.textContent = String(left);
    count.classList.toggle("over", left < 0);
    count.setAttribute("aria-label", `${left} characters left`);
    submit.disabled = left < 0 || text.value.trim() === "";
  };
  const form = h(
    "form",
    { class: "card compose" },
    h("label", { for: "compose" }, "What's happening?"),
    text,
    h("div", { class: "row" }, count, submit),
  );
  text.addEventListener("input", update);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const post = await api.createPost({ text: text.value });
      text.value = "";
      onPosted(post);
      say("Posted.");
    } catch (error) {
      showError(error);
    } finally {
      update();
    }
  });
  update();
  return form;
}

function homePage(): void {
  const list = h("ol", { class: "posts", "aria-label": "Home timeline" });
  const pill = h("button", { type: "button", class: "pill", hidden: true });
  const seen = new Set<string>();
  let newest: string | null = null;
  let waiting: TimelinePost[] = [];
  const render = (post: TimelinePost) => {
    seen.add(post.id);
    if (newest === null || BigInt(post.id) > BigInt(newest)) newest = post.id;
    return postItem(post, post.author);
  };
  pill.addEventListener("click", () => {
    prepend(...waiting.filter((post) => !seen.has(post.id)).map(render));
    waiting = [];
    pill.hidden = true;
    list.querySelector<HTMLElement>("a, button")?.focus();
  });
  const compose = composeBox((post) => prepend(render({ ...post, author: me })));
  mount("Home", h("h1", { class: "visually-hidden" }, "Home"), compose, pill, list);
  const prepend = feed(list, api.home, render, "Nothing here yet: follow someone, or post something.");

  // Newer posts wait behind the pill, so the list never moves under the reader's eyes.
  const poll = setInterval(async () => {
    try {
      const result = await api.home(newest === null ? { limit: 40 } : { since_id: newest, limit: 40 });
      const fresh = result.items.filter(
        (post) => !seen.has(post.id) && !waiting.some((w) => w.id === post.id),
      );
      if (fresh.length === 0) return;
      waiting = [...fresh, ...waiting];
      pill.textContent = `Show ${waiting.length} new post${waiting.length === 1 ? "" : "s"}`;
      pill.hidden = false;
    } catch {
      // The next poll tries again.
    }
  }, NEW_POSTS_POLL_MILLISECONDS);
  page?.signal.addEventListener("abort", () => clearInterval(poll));
}

async function profilePage(username: string): Promise<void> {
  mount("Profile", h("p", {}, "Loading…"));
  let user: User;
  try {
    user = await api.userByName(username);
  } catch (error) {
    mount("Not found", h("h1", {}, error instanceof ApiError && error.status === 404 ? "No such user" : "Could not load this profile"));
    return;
  }
  const counts = await api.counts(user.id);
  const followers = h("strong", { id: "followers-count" }, String(counts.followers));
  const header = h(
    "section",
    { class: "card profile", "aria-labelledby": "profile-name" },
    h("h1", { id: "profile-name" }, user.display_name || user.username),
    h("p", { class: "handle" }, `@${user.username}`),
    user.bio ? h("p", {}, user.bio) : null,
    h(
      "p",
      { class: "counts" },
      followers,
      " followers · ",
      h("strong", {}, String(counts.following)),
      " following",
    ),
  );
  if (me !== null && me.id !== user.id) {
    const viewer = me;
    let following = (await api.relationship(viewer.id, user.id)).following;
    const button = h("button", { type: "button", class: "follow" });
    const show = () => {
      button.textContent = following ? "Unfollow" : "Follow";
      button.setAttribute("aria-pressed", String(following));
    };
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const result = following
          ? await api.unfollow(viewer.id, user.id)
          : await api.follow(viewer.id, user.id);
        following = result.following;
        followers.textContent = String((await api.counts(user.id)).followers);
        show();
        say(following ? `You follow @${user.username}.` : `You no longer follow @${user.username}.`);
      } catch (error) {
        showError(error);
      } finally {
        button.disabled = false;
      }
    });
    show();
    header.append(button);
  }
  const list = h("ol", { class: "posts", "aria-label": `Posts by ${user.username}` });
  mount(user.username, header, list);
  feed(list, (cursor) => api.userPosts(user.id, cursor), (post) => postItem(post, user), "No posts yet.");
}

const NOTIFICATION_TEXT: Record<Notification["kind"], string> = {
  follow: "followed you",
  mention: "mentioned you",
  reply: "replied to you",
};

async function notificationsPage(): Promise<void> {
  const list = h("ol", { class: "notifications", "aria-label": "Notifications" });
  // A notification carries ids only: its people and posts are fetched in one batch each.
  const actors = new Map<string, User>();
  const posts = new Map<string, Post>();
  const render = (notification: Notification) => {
    const actor = actors.get(notification.actor_id);
    const post = notification.post_id === null ? undefined : posts.get(notification.post_id);
    const mentioned = new Map(post?.mentions.map((m) => [m.username.toLowerCase(), m.username]));
    return h(
      "li",
      { class: notification.read ? "notification" : "notification unread" },
      actor
        ? h("a", { href: `#/u/${encodeURIComponent(actor.username)}` }, `@${actor.username}`)
        : "Someone",
      ` ${NOTIFICATION_TEXT[notification.kind]} `,
      h("time", { datetime: notification.created_at }, timeAgo(notification.created_at)),
      post && h("blockquote", {}, ...richText(post.text, mentioned)),
    );
  };
  const withActors = async (notifications: Notification[]) => {
    const newIds = (ids: (string | null)[], known: Map<string, unknown>) =>
      [...new Set(ids)].filter((id): id is string => id !== null && !known.has(id));
    const [users, found] = await Promise.all([
      api.users(newIds(notifications.map((n) => n.actor_id), actors)),
      api.posts(newIds(notifications.map((n) => n.post_id), posts)),
    ]);
    for (const user of users) actors.set(user.id, user);
    for (const post of found) posts.set(post.id, post);
  };
  mount("Notifications", h("h1", {}, "Notifications"), list);
  const prepend = feed(
    list,
    async (cursor) => {
      const result = await api.notifications(cursor);
      await withActors(result.items);
      return result;
    },
    render,
    "No notifications yet.",
  );
  onLiveNotification = async (notification) => {
    await withActors([notification]);
    prepend(render(notification));
    await api.markAllRead();
  };
  setUnread((await api.markAllRead()).count);
}

function tagPage(tag: string): void {
  mount(
    `#${tag}`,
    h("h1", {}, `#${tag}`),
    h("p", {}, "Searching posts by hashtag is not part of the API yet."),
  );
}

// ---- routing -----------------------------------------------------------------------------

async function route(): Promise<void> {
  const [, name = "", argument = ""] = location.hash.split("/");
  const value = decodeURIComponent(argument);
  if (me === null && name !== "signup") {
    authPage("login");
    if (name !== "login") history.replaceState(null, "", "#/login");
    return;
  }
  try {
    if (name === "signup" || name === "login") authPage(name);
    else if (name === "notifications") await notificationsPage();
    else if (name === "me" && me !== null) location.hash = `#/u/${encodeURIComponent(me.username)}`;
    else if (name === "u") await profilePage(value);
    else if (name === "tag") tagPage(value);
    else homePage();
  } catch (error) {
    showError(error);
  }
  main.focus({ preventScroll: true });
}

document.getElementById("sign-out")?.addEventListener("click", async () => {
  endSession();
  try {
    await api.signOut();
  } finally {
    location.hash = "#/login";
  }
});

// The skip link focuses the content; as a plain #main link it would change the route.
document.querySelector(".skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", () => void route());

async function start(): Promise<void> {
  if (hasSession() && (await refresh())) {
    try {
      await startSession();
    } catch (error) {
      endSession();
      showError(error);
    }
  }
  await route();
}

void start();
