// A small Markdown renderer and code highlighter for model output. It builds DOM nodes with
// createElement and textContent only: no HTML string is ever parsed, so nothing a model writes
// can become markup, script or a request. Images are shown as links (loading them would make
// requests to other sites); links open only http(s) and mailto URLs, in a new tab, without a
// referrer.
//
// Covered: paragraphs, headings, fenced code blocks (language label, copy button, highlighting),
// indented code, block quotes, ordered and unordered lists (nested), tables, rules; inline code,
// strong, emphasis, strikethrough, links, autolinks and hard breaks. Text that is still streaming
// renders as it stands (an open code fence is a code block until it closes).

const MAX_DEPTH = 8;
const MAX_INPUT = 400_000;

function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

// ---------------------------------------------------------------------------------------------
// Blocks

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,12})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const TABLE_RULE = /^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function isBlockStart(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    ITEM.test(line);
}

function splitRow(line) {
  let text = line.trim();
  if (text.startsWith('|')) text = text.slice(1);
  if (text.endsWith('|') && !text.endsWith('\\|')) text = text.slice(0, -1);
  const cells = [];
  let cell = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === '|') {
      cell += '|';
      i++;
    } else if (text[i] === '|') {
      cells.push(cell.trim());
      cell = '';
    } else {
      cell += text[i];
    }
  }
  cells.push(cell.trim());
  return cells;
}

function blocks(lines, depth, out) {
  let i = 0;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) {
      const p = node('p');
      inline(paragraph.join('\n'), p, depth);
      out.push(p);
      paragraph = [];
    }
  };
  while (i < lines.length) {
    const line = lines[i];
    let match;
    if ((match = FENCE.exec(line))) {
      flush();
      const fence = match[1];
      const language = match[2].toLowerCase();
      const body = [];
      i++;
      while (i < lines.length) {
        const closing = lines[i].trim();
        if (closing.startsWith(fence[0].repeat(fence.length)) && /^[`~]+$/.test(closing)) {
          i++;
          break;
        }
        body.push(lines[i]);
        i++;
      }
      out.push(codeBlock(body.join('\n'), language));
      continue;
    }
    if (line.trim() === '') {
      flush();
      i++;
      continue;
    }
    if (paragraph.length === 0 && /^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || lines[i].trim() === '')) {
        body.push(lines[i].replace(/^( {4}|\t)/, ''));
        i++;
      }
      while (body.length && body[body.length - 1].trim() === '') body.pop();
      out.push(codeBlock(body.join('\n'), ''));
      continue;
    }
    if ((match = HEADING.exec(line))) {
      flush();
      const heading = node('h' + Math.min(6, match[1].length + 2));
      inline(match[2] || '', heading, depth);
      out.push(heading);
      i++;
      continue;
    }
    if (RULE.test(line) && !(paragraph.length && /^ {0,3}-+\s*$/.test(line))) {
      flush();
      out.push(node('hr'));
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      flush();
      const inner = [];
      while (i < lines.length && (match = QUOTE.exec(lines[i]))) {
        inner.push(match[1]);
        i++;
      }
      const quote = node('blockquote');
      if (depth < MAX_DEPTH) {
        const children = [];
        blocks(inner, depth + 1, children);
        quote.append(...children);
      } else {
        quote.textContent = inner.join('\n');
      }
      out.push(quote);
      continue;
    }
    if ((match = ITEM.exec(line)) && (paragraph.length === 0 || match[1].length === 0)) {
      flush();
      i = list(lines, i, depth, out);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1]) &&
        lines[i + 1].includes('-')) {
      flush();
      i = table(lines, i, depth, out);
      continue;
    }
    paragraph.push(line);
    i++;
  }
  flush();
}

function list(lines, start, depth, out) {
  const first = ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const element = node(ordered ? 'ol' : 'ul');
  if (ordered) {
    const number = parseInt(first[2], 10);
    if (number !== 1 && Number.isFinite(number)) element.start = number;
  }
  let i = start;
  while (i < lines.length) {
    const match = ITEM.exec(lines[i]);
    if (!match || match[1].length !== indent || /\d/.test(match[2]) !== ordered) break;
    const content = [match[3] || ''];
    const contentIndent = indent + match[2].length + 1;
    i++;
    let blank = false;
    while (i < lines.length) {
      const next = lines[i];
      if (next.trim() === '') {
        blank = true;
        content.push('');
        i++;
        continue;
      }
      const leading = next.length - next.trimStart().length;
      const item = ITEM.exec(next);
      if (item && item[1].length <= indent) break;
      if (leading > indent) {
        content.push(next.slice(Math.min(leading, contentIndent)));
      } else if (!blank && !isBlockStart(next)) {
        content.push(next.trim());
      } else {
        break;
      }
      blank = false;
      i++;
    }
    while (content.length && content[content.length - 1] === '') content.pop();
    const li = node('li');
    if (depth < MAX_DEPTH) {
      const children = [];
      blocks(content, depth + 1, children);
      // A tight item's single paragraph renders inline.
      if (children.length >= 1 && children[0].tagName === 'P' && !content.includes('')) {
        li.append(...children[0].childNodes, ...children.slice(1));
      } else {
        li.append(...children);
      }
    } else {
      li.textContent = content.join('\n');
    }
    element.append(li);
  }
  out.push(element);
  return i;
}

function table(lines, start, depth, out) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((cell) => {
    const left = cell.startsWith(':');
    const right = cell.endsWith(':');
    return left && right ? 'center' : right ? 'right' : left ? 'left' : '';
  });
  const wrapper = node('div', 'table-wrap');
  const element = node('table');
  const head = node('thead');
  const headRow = node('tr');
  header.forEach((cell, column) => {
    const th = node('th');
    if (aligns[column]) th.className = 'align-' + aligns[column];
    inline(cell, th, depth);
    headRow.append(th);
  });
  head.append(headRow);
  element.append(head);
  const body = node('tbody');
  let i = start + 2;
  while (i < lines.length && lines[i].includes('|') && lines[i].trim() !== '') {
    const row = node('tr');
    const cells = splitRow(lines[i]);
    header.forEach((_, column) => {
      const td = node('td');
      if (aligns[column]) td.className = 'align-' + aligns[column];
      inline(cells[column] || '', td, depth);
      row.append(td);
    });
    body.append(row);
    i++;
  }
  element.append(body);
  wrapper.append(element);
  out.push(wrapper);
  return i;
}

// ---------------------------------------------------------------------------------------------
// Inline

const ESCAPABLE = /[\\`*_{}[\]()#+\-.!|~<>]/;

function safeUrl(text) {
  try {
    const url = new URL(text, window.location.href);
    if (url.protocol === 'http:' || url.protocol === 'https:' || url.protocol === 'mailto:') {
      return url.href;
    }
  } catch {
    // not a URL
  }
  return null;
}

function link(href, children) {
  const a = node('a');
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer nofollow';
  a.referrerPolicy = 'no-referrer';
  a.append(...children);
  return a;
}

// Index of the `]` that closes the `[` at `open`, or -1.
function closingBracket(text, open) {
  let level = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '\\') {
      i++;
    } else if (text[i] === '[') {
      level++;
    } else if (text[i] === ']') {
      level--;
      if (level === 0) return i;
    }
  }
  return -1;
}

function inline(text, parent, depth) {
  let buffer = '';
  const flush = () => {
    if (buffer) {
      parent.append(document.createTextNode(buffer));
      buffer = '';
    }
  };
  const nested = (content, element) => {
    if (depth < MAX_DEPTH) {
      inline(content, element, depth + 1);
    } else {
      element.textContent = content;
    }
    return element;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && ESCAPABLE.test(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (c === '\\' && text[i + 1] === '\n') {
      flush();
      parent.append(node('br'));
      i += 2;
      continue;
    }
    if (c === '`') {
      let run = 1;
      while (text[i + run] === '`') run++;
      const ticks = '`'.repeat(run);
      let close = text.indexOf(ticks, i + run);
      while (close !== -1 && text[close + run] === '`') {
        let end = close;
        while (text[end] === '`') end++;
        close = text.indexOf(ticks, end);
      }
      if (close !== -1) {
        flush();
        let code = text.slice(i + run, close).replace(/\n/g, ' ');
        if (code.length > 2 && code.startsWith(' ') && code.endsWith(' ')) code = code.slice(1, -1);
        parent.append(node('code', 'inline', code));
        i = close + run;
        continue;
      }
      buffer += ticks;
      i += run;
      continue;
    }
    if ((c === '*' || c === '_') && text[i + 1] !== ' ' && text[i + 1] !== undefined) {
      let run = 1;
      while (text[i + run] === c && run < 3) run++;
      const marker = c.repeat(run);
      const previous = i > 0 ? text[i - 1] : ' ';
      const intraword = c === '_' && /[\p{L}\p{N}]/u.test(previous);
      if (!intraword) {
        let close = text.indexOf(marker, i + run);
        while (close !== -1 && (text[close - 1] === ' ' || text[close - 1] === '\\' ||
            (c === '_' && /[\p{L}\p{N}]/u.test(text[close + run] || '')))) {
          close = text.indexOf(marker, close + 1);
        }
        if (close > i + run) {
          flush();
          const content = text.slice(i + run, close);
          if (run === 3) {
            const strong = node('strong');
            strong.append(nested(content, node('em')));
            parent.append(strong);
          } else {
            parent.append(nested(content, node(run === 2 ? 'strong' : 'em')));
          }
          i = close + run;
          continue;
        }
      }
      buffer += marker;
      i += run;
      continue;
    }
    if (c === '~' && text[i + 1] === '~') {
      const close = text.indexOf('~~', i + 2);
      if (close > i + 2) {
        flush();
        parent.append(nested(text.slice(i + 2, close), node('del')));
        i = close + 2;
        continue;
      }
    }
    const image = c === '!' && text[i + 1] === '[';
    if (c === '[' || image) {
      const open = image ? i + 1 : i;
      const close = closingBracket(text, open);
      if (close !== -1 && text[close + 1] === '(') {
        const end = text.indexOf(')', close + 2);
        if (end !== -1) {
          const target = text.slice(close + 2, end).trim().split(/\s+/)[0] || '';
          const label = text.slice(open + 1, close);
          const href = safeUrl(target.replace(/^<|>$/g, ''));
          flush();
          if (image) {
            // Never loaded: a picture from another site is a request to it.
            const shown = '[image: ' + (label || target) + ']';
            parent.append(href ? link(href, [document.createTextNode(shown)]) :
              document.createTextNode(shown));
          } else if (href) {
            parent.append(nested(label, link(href, [])));
          } else {
            parent.append(nested(label, node('span')));
          }
          i = end + 1;
          continue;
        }
      }
    }
    if ((c === 'h' || c === 'H') && /^https?:\/\//i.test(text.slice(i, i + 8)) &&
        !/[\p{L}\p{N}]/u.test(i > 0 ? text[i - 1] : ' ')) {
      let end = i;
      while (end < text.length && !/[\s<>"]/.test(text[end])) end++;
      while (end > i && /[.,;:!?)'*_]/.test(text[end - 1])) end--;
      const url = text.slice(i, end);
      const href = safeUrl(url);
      if (href) {
        flush();
        parent.append(link(href, [document.createTextNode(url)]));
        i = end;
        continue;
      }
    }
    if (c === '\n') {
      flush();
      parent.append(node('br'));
      i++;
      continue;
    }
    buffer += c;
    i++;
  }
  flush();
}

// ---------------------------------------------------------------------------------------------
// Code blocks and highlighting

const C_LIKE = 'break case catch class const continue default do else enum extern for goto if ' +
  'inline namespace new private protected public return sizeof static struct switch template ' +
  'this throw try typedef union using virtual void volatile while';
const KEYWORDS = {
  rust: 'as async await break const continue crate dyn else enum extern false fn for if impl in ' +
    'let loop match mod move mut pub ref return self Self static struct super trait true type ' +
    'unsafe use where while',
  python: 'and as assert async await break class continue def del elif else except False finally ' +
    'for from global if import in is lambda None nonlocal not or pass raise return True try ' +
    'while with yield',
  js: 'async await break case catch class const continue debugger default delete do else export ' +
    'extends false finally for from function if import in instanceof let new null of return ' +
    'static super switch this throw true try typeof undefined var void while with yield',
  go: 'break case chan const continue default defer else fallthrough for func go goto if import ' +
    'interface map nil package range return select struct switch type var true false',
  c: C_LIKE + ' auto bool char double float int long short signed unsigned true false nullptr ' +
    'NULL include define',
  java: C_LIKE + ' abstract boolean byte char double extends final float implements import ' +
    'instanceof int interface long package short super synchronized throws true false null',
  shell: 'if then else elif fi for while until do done case esac function in return export ' +
    'local echo cd exit set unset source',
  sql: 'select from where insert into values update set delete create table drop alter join ' +
    'left right inner outer on group by order having limit as and or not null is in primary key',
  json: 'true false null',
};
const ALIASES = {
  rs: 'rust', py: 'python', python3: 'python', javascript: 'js', ts: 'js', typescript: 'js',
  jsx: 'js', tsx: 'js', mjs: 'js', golang: 'go', 'c++': 'c', cpp: 'c', cc: 'c', h: 'c', hpp: 'c',
  cs: 'java', csharp: 'java', kotlin: 'java', kt: 'java', swift: 'java', scala: 'java',
  sh: 'shell', bash: 'shell', zsh: 'shell', console: 'shell', toml: 'shell', yaml: 'shell',
  yml: 'shell', ini: 'shell', dockerfile: 'shell', make: 'shell', makefile: 'shell',
  postgres: 'sql', mysql: 'sql', sqlite: 'sql',
};
const HASH_COMMENTS = new Set(['python', 'shell']);
const keywordSets = {};

function keywordsOf(language) {
  if (!keywordSets[language]) {
    const words = KEYWORDS[language] || '';
    keywordSets[language] = new Set(language === 'sql' ?
      words.split(' ').flatMap((w) => [w, w.toUpperCase()]) : words.split(' '));
  }
  return keywordSets[language];
}

// Splits `code` into [class, text] tokens: comments, strings, numbers, keywords, plain text.
export function tokenize(code, languageName) {
  const language = ALIASES[languageName] || languageName;
  const known = Object.prototype.hasOwnProperty.call(KEYWORDS, language);
  const keywords = keywordsOf(known ? language : 'c');
  const hash = HASH_COMMENTS.has(language);
  const slashes = !hash && language !== 'sql' && language !== 'json';
  const dashes = language === 'sql';
  const tokens = [];
  let plain = '';
  const push = (kind, text) => {
    if (plain) {
      tokens.push(['', plain]);
      plain = '';
    }
    tokens.push([kind, text]);
  };
  let i = 0;
  while (i < code.length) {
    const c = code[i];
    const rest2 = code.slice(i, i + 2);
    if ((hash && c === '#' && (language !== 'shell' || i === 0 || /\s/.test(code[i - 1]))) ||
        (slashes && rest2 === '//') || (dashes && rest2 === '--')) {
      let end = code.indexOf('\n', i);
      if (end === -1) end = code.length;
      push('tok-comment', code.slice(i, end));
      i = end;
      continue;
    }
    if (slashes && rest2 === '/*') {
      let end = code.indexOf('*/', i + 2);
      end = end === -1 ? code.length : end + 2;
      push('tok-comment', code.slice(i, end));
      i = end;
      continue;
    }
    if (c === '"' || c === "'" || (c === '`' && language === 'js')) {
      // Rust lifetimes ('a) are not strings.
      if (c === "'" && language === 'rust' && /^'[A-Za-z_]\w*(?!')/.test(code.slice(i, i + 40)) &&
          code[i + 2] !== "'") {
        plain += c;
        i++;
        continue;
      }
      const triple = language === 'python' && code.slice(i, i + 3) === c.repeat(3);
      const quote = triple ? c.repeat(3) : c;
      let end = i + quote.length;
      while (end < code.length) {
        if (code[end] === '\\') {
          end += 2;
          continue;
        }
        if (code.startsWith(quote, end)) {
          end += quote.length;
          break;
        }
        if (code[end] === '\n' && !triple && c !== '`') break;
        end++;
      }
      push('tok-string', code.slice(i, Math.min(end, code.length)));
      i = Math.min(end, code.length);
      continue;
    }
    if (/[0-9]/.test(c) && !/[\w$]/.test(i > 0 ? code[i - 1] : ' ')) {
      const match = /^(0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*(\.\d[\d_]*)?([eE][+-]?\d+)?)\w*/
        .exec(code.slice(i, i + 64));
      push('tok-number', match[0]);
      i += match[0].length;
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      const match = /^[A-Za-z_$][\w$]*/.exec(code.slice(i, i + 256));
      const word = match[0];
      if (keywords.has(word)) {
        push('tok-keyword', word);
      } else if (code[i + word.length] === '(' || (language === 'rust' && code[i + word.length] === '!')) {
        push('tok-call', word);
      } else if (/^[A-Z][a-z]\w*$/.test(word) && language !== 'sql') {
        push('tok-type', word);
      } else {
        plain += word;
      }
      i += word.length;
      continue;
    }
    plain += c;
    i++;
  }
  if (plain) tokens.push(['', plain]);
  return tokens;
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Pages served over plain HTTP to another machine have no clipboard API.
  const area = node('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

export function copyButton(getText, label = 'Copy') {
  const button = node('button', 'copy', label);
  button.type = 'button';
  button.addEventListener('click', async () => {
    try {
      await copyText(getText());
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed';
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

function codeBlock(code, language) {
  const wrapper = node('div', 'code-block');
  const head = node('div', 'code-head');
  head.append(node('span', 'code-language', language || 'text'), copyButton(() => code));
  const pre = node('pre');
  const element = node('code');
  if (language) element.dataset.language = language;
  if (code.length <= 200_000) {
    for (const [kind, text] of tokenize(code, language)) {
      element.append(kind ? node('span', kind, text) : document.createTextNode(text));
    }
  } else {
    element.textContent = code;
  }
  pre.append(element);
  wrapper.append(head, pre);
  return wrapper;
}

// Renders `text` as Markdown into `target`, replacing what it held.
export function renderMarkdown(text, target) {
  const source = String(text).slice(0, MAX_INPUT).replace(/\r\n?/g, '\n');
  const out = [];
  blocks(source.split('\n'), 0, out);
  target.replaceChildren(...out);
}
