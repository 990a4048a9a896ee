// Web addresses in message bodies, found on the rules of GitHub's
// autolinks (the GFM spec's "Autolinks (extension)"), as most chat apps
// link them:
//
// - http:// and https:// URLs, not right after a Latin letter (a
//   Chinese sentence runs into one: 见https://…), whose host starts with
//   a letter or digit; and www. hosts, at the start or after a space,
//   an opening bracket or quote, or an end (below), linked as https://.
//   The host's last two labels have no '_', and a www. host has a label
//   after the one that follows www. No other scheme is linked: not
//   javascript:, data:, vbscript: or file:, nor mailto: (an address in a
//   chat is for copying, and GFM links it only by a rule of its own).
// - A link ends before a space or line break, an invisible control or
//   format character (a direction override could make its text read
//   otherwise than it goes), '<', '>' and '"', which a URL cannot hold
//   (RFC 3986) and chat text puts around one, and CJK or full-width
//   punctuation (。、「」（）), which a Chinese or Japanese sentence puts
//   right after one.
// - Punctuation that ends a sentence or clause (? ! . , : ; * _ ~ …),
//   a closing quote, and a closing bracket with more of its kind than
//   openers in the link, are not its end: "(see https://a.example/x)."
//   links https://a.example/x; https://en.wikipedia.org/wiki/Go_(lang)
//   keeps its balanced parenthesis. GFM takes out ')' alone and no
//   quote; linkify-it, as here, also ']' and '}', ';' and quotes.

// END is what ends a link, as a character class's contents.
const END = '\\s<>"\\p{Cc}\\p{Cf}\\u3000-\\u303f\\uff01-\\uff0f\\uff1a-\\uff20\\uff3b-\\uff40\\uff5b-\\uff65';
const CANDIDATE = new RegExp(
  `(?<![a-z])https?://[^${END}]+|(?<=^|[${END}([{*_~'“‘«])www\\.[^${END}]+`,
  'giu',
);
const TRAILING = new Set([...'?!.,:;*_~…\'’”»']);
const OPENER = { ')': '(', ']': '[', '}': '{' };
const HOST = /^[\p{L}\p{N}\p{M}_.-]*/u;

// trimEnd returns url without the trailing punctuation and unbalanced
// closing brackets that are not part of it.
function trimEnd(url) {
  const count = (c) => url.split(c).length - 1;
  const excess = {};
  for (const [closer, opener] of Object.entries(OPENER)) excess[closer] = count(closer) - count(opener);
  let end = url.length;
  for (;;) {
    const c = url[end - 1];
    if (TRAILING.has(c)) end--;
    else if (excess[c] > 0) {
      excess[c]--;
      end--;
    } else return url.slice(0, end);
  }
}

// validHost reports whether the host at the start of s (after the
// scheme, or www.) may be linked.
function validHost(s, www) {
  if (!/^[\p{L}\p{N}]/u.test(s)) return false;
  const labels = s.match(HOST)[0].split('.').filter(Boolean);
  if (www && labels.length < 3) return false;
  return !labels.slice(-2).some((l) => l.includes('_'));
}

// linkParts splits a message body into its text (strings) and the web
// addresses in it ({href, text}: text as written, href the URL to open).
export function linkParts(body) {
  const parts = [];
  let at = 0;
  for (const m of body.matchAll(CANDIDATE)) {
    const url = trimEnd(m[0]);
    const www = url.length > 3 && url.slice(0, 4).toLowerCase() === 'www.';
    if (!validHost(url.slice(www ? 0 : url.indexOf('//') + 2), www)) continue;
    if (m.index > at) parts.push(body.slice(at, m.index));
    parts.push({ href: www ? `https://${url}` : url, text: url });
    at = m.index + url.length;
  }
  if (at < body.length) parts.push(body.slice(at));
  return parts;
}
