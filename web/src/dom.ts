// Building the page from data: every piece of user text goes in as a text node, never as HTML.

type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | boolean | undefined>;

/** An element with attributes (false/undefined ones left out) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === true) element.setAttribute(name, "");
    else if (typeof value === "string") element.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

// URLs, @mentions and #hashtags, as the Post Service extracts them (its rules decide which
// mention is a user: the post's `mentions` list).
const TOKEN = /(https?:\/\/[^\s<>"']+)|(^|[^\w@])@(\w{1,30})|(^|[^\w#&])#(\w{1,100})/gu;
const TRAILING_PUNCTUATION = /[.,;:!?)\]}'"]+$/u;

/** Post text as nodes: mentions of known users, hashtags and http(s) links become links. */
export function richText(text: string, mentioned: ReadonlyMap<string, string>): Node[] {
  const nodes: Node[] = [];
  let plain = "";
  let last = 0;
  const flush = () => {
    if (plain) nodes.push(document.createTextNode(plain));
    plain = "";
  };
  for (const match of text.matchAll(TOKEN)) {
    const [whole, url, mentionLead, username, tagLead, tag] = match;
    plain += text.slice(last, match.index);
    last = match.index + whole.length;
    if (url !== undefined) {
      const trailing = url.match(TRAILING_PUNCTUATION)?.[0] ?? "";
      const href = url.slice(0, url.length - trailing.length);
      flush();
      nodes.push(h("a", { href, rel: "noopener noreferrer nofollow ugc", target: "_blank" }, href));
      plain += trailing;
    } else if (username !== undefined && mentioned.has(username.toLowerCase())) {
      plain += mentionLead ?? "";
      flush();
      const canonical = mentioned.get(username.toLowerCase()) ?? username;
      nodes.push(h("a", { href: `#/u/${encodeURIComponent(canonical)}` }, `@${username}`));
    } else if (tag !== undefined) {
      plain += tagLead ?? "";
      flush();
      nodes.push(h("a", { href: `#/tag/${encodeURIComponent(tag.toLowerCase())}` }, `#${tag}`));
    } else {
      plain += whole;
    }
  }
  plain += text.slice(last);
  flush();
  return nodes;
}

/** Code points, as the Post Service counts the 500 a post may have. */
export function codePoints(text: string): number {
  return [...text.normalize("NFC")].length;
}

export function timeAgo(iso: string): string {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return new Date(iso).toLocaleDateString();
}
