// Writes tests/data/gpt2_tokenizer_golden.jsonl: GPT-2 token ids, as the gpt-3-encoder npm package
// (a JavaScript port of OpenAI's encoder.py) computes them, for a seeded corpus of varied strings plus
// hand-picked edge cases. One JSON object per line: {"text": ..., "ids": [...]}.
//
// To rerun (from the repository root; the package is used from a temp folder, never shipped):
//
//   tmp=$(mktemp -d) && (cd "$tmp" && npm pack gpt-3-encoder && tar xzf gpt-3-encoder-*.tgz)
//   node tools/gpt2_tokenizer_golden.js "$tmp/package"
//
// The corpus is deterministic (a seeded generator), so a rerun writes the same file.
//
// One known flaw of the package is handled here rather than copied into pathpatch: it keys its merge
// ranks by the pair as an array turned into a string, a + "," + b, so a pair like ('",', '"') takes the
// rank of the merge ('"', ',"'), and the package merges what OpenAI's encoder.py (tuple keys) never
// would. This script loads a second copy of the package whose arrays stringify with a separator that
// no GPT-2 symbol contains, so that copy runs the package's own code with unambiguous keys. Where the
// two differ, "ids" holds the unambiguous ids (encoder.py's), "js_ids" what the package gave, and
// "note" says why; every other line is the package's output as it is. (On the corpus below no line
// differs: the aliased pairs never meet in an order that matters. The check stays as a guard.)
//
// The generator keeps to characters whose Unicode category has not changed since Unicode 14 (the
// tables of Debian 12's PCRE2), so that Node's newer tables and PCRE2 agree on letters and numbers.
'use strict';
const fs = require('fs');
const path = require('path');

const pkgDir = process.argv[2];
if (!pkgDir || !fs.existsSync(path.join(pkgDir, 'Encoder.js'))) {
  console.error('usage: node tools/gpt2_tokenizer_golden.js <unpacked gpt-3-encoder package folder>');
  process.exit(2);
}
const outFile = path.join(__dirname, '..', 'tests', 'data', 'gpt2_tokenizer_golden.jsonl');

// ---- the package, as is, and a copy with unambiguous pair keys ----

const encoderPath = require.resolve(path.resolve(pkgDir, 'Encoder.js'));
const asIs = require(encoderPath);
delete require.cache[encoderPath];

const originalToString = Array.prototype.toString;
function withUnambiguousKeys(fn) {
  // '\u0001' is never in a GPT-2 symbol: byte 0x01 is spelled U+0101 in the byte-to-unicode table.
  Array.prototype.toString = function () { return this.join('\u0001'); };
  try { return fn(); } finally { Array.prototype.toString = originalToString; }
}
const unambiguous = withUnambiguousKeys(() => require(encoderPath));
const encodeUnambiguous = (text) => withUnambiguousKeys(() => unambiguous.encode(text));

// ---- a seeded generator ----

function mulberry32(seed) {
  return function () {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(20240611);
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));  // inclusive
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const chance = (p) => rand() < p;
const cp = (lo, hi) => String.fromCodePoint(int(lo, hi));

const WORDS = ('the of and to in is was that for it with as his on be at by had are but from or have an ' +
  'they which one you were her all she there would their we him been has when who will more no if out so ' +
  'said what up its about into than them can only other new some could time these two may then do first ' +
  'any my now such like our over man me even most made after also did many before must through back years ' +
  'where much your way well down should because each just those people how too little state good very make ' +
  'world still own see men work long get here between both life being under never day same another know ' +
  'while last might us great old year off come since against go came right used take three Mary John store ' +
  'drink gave went tokenizer transformer attention residual embedding probability neuron circuit patching ' +
  'antidisestablishmentarianism supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis')
  .split(' ');
const CONTRACTIONS = ["don't", "I'm", "you're", "we've", "they'll", "he'd", "it's", "IT'S", "'S", "'s", "'t", "'re",
  "'ve", "'m", "'ll", "'d", "'D", "'LL", "O'Neil", "rock 'n' roll", "''", "'''s", "y'all", "ma'am", "'tis",
  "can't've", "Mary's", "James'", "'sup", "'re'", "'ss", "'lll", "it’s", "don’t"];
const PUNCT = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
const SPACES = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '\r', '\u000b', '\u000c', '\u00a0', '\u3000', '\u2003',
  '\u2009', '\u202f', '\u2028', '\u2029', '\u0085', '\ufeff', '\u200b', '\u180e', '\u1680', ' \t ', '\n ', ' \n'];
const ACCENTED = ['café', 'niño', 'über', 'façade', 'Ærøskøbing', 'Łódź', 'São Paulo', 'Zürich', 'crème brûlée',
  'naïve', 'résumé', 'El Niño', 'smörgåsbord', 'Dvořák', 'İstanbul', 'ß', 'ÉCOLE', 'e\u0301', 'n\u0303', 'u\u0308ber'];
const SCRIPTS = ['Привет мир', 'Γειά σου κόσμε', 'שלום עולם', 'مرحبا بالعالم', 'नमस्ते दुनिया', 'สวัสดีชาวโลก',
  '你好，世界', '日本語のテキスト', 'こんにちは', 'カタカナ', '안녕하세요 세계', 'Բարեւ', 'გამარჯობა', 'ሰላም',
  '١٢٣٤٥', '०१२३', '１２３', 'ⅫⅣ', '½¼¾', '①②③', '²³', '𝐀𝐁𝐂', '𝟘𝟙𝟚', '𐌰𐌱𐌲'];
const EMOJI = ['😀', '🎉', '🚀', '❤️', '❤', '👍🏽', '👨‍👩‍👧‍👦', '👩‍💻', '🏳️‍🌈', '🇯🇵', '🇺🇸🇫🇷', '1️⃣', '#️⃣',
  '🧑🏿‍🤝‍🧑🏻', '😀😀😀', '™', '©', '✓', '→', '∑', '€', '£', '¥', '₹', '§', '¶', '…', '—', '–', '«»', '“”', '‘’'];
const URLS = ['https://example.com/path?q=1&x=y#frag', 'http://www.test.org', 'mailto:someone@example.com',
  'ftp://files.example.net/pub/file.tar.gz', 'https://en.wikipedia.org/wiki/Byte_pair_encoding', 'www.a.b/c',
  'user.name+tag@sub.domain.co.uk', 'C:\\Users\\name\\file.txt', '/usr/local/bin/python3', '../../etc/passwd'];
const CODE = ['for (int i = 0; i < n; ++i) {', 'def f(x):\n    return x**2\n', '{"a": [1, 2, "b"], "c": null}',
  '<div class="x">Hello</div>', 'a->b', 'x != y && z', 'std::vector<int32_t> v{1, 2, 3};', '#include <pcre2.h>',
  'SELECT * FROM t WHERE id = 42;', 'if x == None: pass', '    indented\n        more', 'arr[i][j] += 1;',
  'console.log(`${a}`);', '// comment', '/* block */', 'fn main() -> i32 { 0 }', '$ ls -la | grep foo',
  "print('hello, world')", 'λx.x', '0x7fffffff', '1_000_000', '3.14e-10', 'a_b_c', '__init__', 'CamelCaseName'];

function number() {
  switch (int(0, 6)) {
    case 0: return String(int(0, 9));
    case 1: return String(int(0, 99999));
    case 2: { let s = String(int(1, 9)); for (let n = int(5, 40); n > 0; n--) s += int(0, 9); return s; }
    case 3: return `${int(0, 999)}.${int(0, 99999)}`;
    case 4: return `${int(1, 999)},${String(int(0, 999)).padStart(3, '0')},${String(int(0, 999)).padStart(3, '0')}`;
    case 5: return `${int(1990, 2030)}-${String(int(1, 12)).padStart(2, '0')}-${String(int(1, 28)).padStart(2, '0')}`;
    default: return `-${int(0, 1000)}%`;
  }
}

function word() {
  const w = pick(WORDS);
  const r = rand();
  if (r < 0.15) return w[0].toUpperCase() + w.slice(1);
  if (r < 0.2) return w.toUpperCase();
  return w;
}

function punctuation() {
  let s = '';
  for (let n = int(1, 6); n > 0; n--) s += PUNCT[int(0, PUNCT.length - 1)];
  return s;
}

// Characters from blocks whose letters and numbers were all assigned long before Unicode 14.
const RANGES = [[0x20, 0x7e], [0xa1, 0xff], [0x100, 0x17f], [0x180, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff],
  [0x5d0, 0x5ea], [0x620, 0x64a], [0x660, 0x669], [0x900, 0x963], [0xe01, 0xe3a], [0x2010, 0x2027],
  [0x2070, 0x209c], [0x2100, 0x214f], [0x2150, 0x2189], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x2460, 0x24ff],
  [0x2500, 0x257f], [0x3001, 0x303f], [0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fa5], [0xac00, 0xd7a3],
  [0xff01, 0xff5e], [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1d400, 0x1d454], [0x1d7ce, 0x1d7ff], [0x0, 0x1f],
  [0x7f, 0x9f]];
function randomChars() {
  let s = '';
  const r = pick(RANGES);
  for (let n = int(1, 8); n > 0; n--) s += chance(0.8) ? cp(r[0], r[1]) : cp(...pick(RANGES));
  return s;
}

const FRAGMENTS = [
  [word, 30], [() => pick(CONTRACTIONS), 6], [number, 6], [punctuation, 5], [() => pick(SPACES), 5],
  [() => pick(ACCENTED), 4], [() => pick(SCRIPTS), 4], [() => pick(EMOJI), 4], [() => pick(URLS), 2],
  [() => pick(CODE), 3], [randomChars, 5],
];
const TOTAL_WEIGHT = FRAGMENTS.reduce((a, f) => a + f[1], 0);
function fragment() {
  let r = rand() * TOTAL_WEIGHT;
  for (const [gen, w] of FRAGMENTS) { if ((r -= w) < 0) return gen(); }
  return word();
}

function generated() {
  const n = chance(0.1) ? int(30, 200) : int(1, 12);
  let s = chance(0.1) ? pick(SPACES) : '';
  for (let i = 0; i < n; i++) {
    if (i > 0) s += chance(0.75) ? ' ' : chance(0.5) ? '' : pick(SPACES);
    s += fragment();
  }
  if (chance(0.1)) s += pick(SPACES);
  return s;
}

// ---- hand-picked edge cases ----

const HAND_PICKED = [
  '', ' ', '  ', '   ', '          ', '\t', '\t\t', '\n', '\n\n', '\n\n\n', '\r\n', '\r\n\r\n', '\r', ' \n', '\n ',
  ' \t\n ', 'a', 'a ', 'a  ', 'a   ', ' a', '  a', '   a', 'a  b', 'a   b', 'a\tb', 'a\nb', 'a\r\nb', 'a \n b',
  'trailing spaces   ', '   leading spaces', 'Hello world', 'Hello, world!', 'hello world\n',
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "'", "''", "'''",
  "don't", "Don't", "DON'T", "I'm", "you're", "we've", "they'll", "she'd", "it's", "It'S", "o'clock",
  "rock 'n' roll", "'sup", "'tis", "'ss", "'lll", "' s", "'s's's", 'the cat\'s hat', "James' book", 'it’s',
  '0', '1', '12', '123', '1234', '12345', '1234567890', '3.14159265358979', '1,000,000', '100%', '$5.99',
  '99999999999999999999999999999999', '2024-06-11', '12:34:56', '+1 (555) 123-4567', '1st 2nd 3rd 4th',
  '!', '!!', '!!!', '?!', '...', '....', '……', '---', '-->', '<|endoftext|>', '<|', '|>', '"', '""', '","',
  '",""', "','", "['a','b']", '["a","b"]', '{"a":1,"b":2}', '(),"', '}],"', ').",', '.,"', ' ,"', '"],"',
  '],[', '[[1,2],[3,4]]', ')))))', '@#$%^&*', '~`|\\', '\\n', '\\\\',
  'é', 'ñ', 'ü', 'café', 'niño', 'über', 'e\u0301', 'Ångström', 'ÀÉÎÕÜ', 'façade naïve résumé',
  '中', '中文', '你好世界', '日本語', 'こんにちは世界', '한국어', '漢字かなカナ', '。、「」',
  '😀', '👍', '👍🏽', '❤️', '👨‍👩‍👧‍👦', '👩‍❤️‍💋‍👨', '🏳️‍🌈', '🇯🇵', '1️⃣', '🧑🏿‍🤝‍🧑🏻', 'a😀b', '😀 😀', ' 😀',
  'Hello мир 世界 🌍', 'Ελληνικά and English', 'עברית123', 'abc١٢٣', 'x²', '½', 'Ⅻ', '①',
  '\u00a0', 'a\u00a0b', '\u3000', 'a\u3000b', '\u2003', '\u0085', 'a\u0085b', '\ufeff', '\ufeffa', '\u200b',
  'a\u200bb', '\u180e', '\u000b', '\u000c', '\u0000', 'a\u0000b', '\u007f', '\u2028', '\u2029', 'a \u00a0 b',
  'pneumonoultramicroscopicsilicovolcanoconiosis', 'Supercalifragilisticexpialidocious',
  'a'.repeat(200), 'ab'.repeat(100), ' '.repeat(100), '!'.repeat(100), '0'.repeat(100), '中'.repeat(100),
  'https://github.com/openai/gpt-2/blob/master/src/encoder.py', 'user@example.com', 'www.example.com',
  'def encode(self, text):\n    bpe_tokens = []\n    for token in re.findall(self.pat, text):\n',
  'int main() {\n\treturn 0;\n}\n', '#include <iostream>', 'x = [i ** 2 for i in range(10)]',
  'When Mary and John went to the store, John gave a drink to',
  'When Mary and John went to the store, Anna gave a drink to',
  'The quick brown fox jumps over the lazy dog.',
];

// ---- write ----

const texts = HAND_PICKED.slice();
for (let i = 0; i < 1200; i++) texts.push(generated());

let lines = [];
let aliased = 0;
for (const text of texts) {
  const jsIds = asIs.encode(text);
  const ids = encodeUnambiguous(text);
  const row = { text, ids };
  if (JSON.stringify(ids) !== JSON.stringify(jsIds)) {
    aliased++;
    row.js_ids = jsIds;
    row.note = "gpt-3-encoder's merge ranks are keyed by a + ',' + b, which aliases pairs; ids are encoder.py's";
  }
  if (ids.some((x) => typeof x !== 'number')) throw new Error('a token missing from the vocabulary: ' + JSON.stringify(text));
  lines.push(JSON.stringify(row));
}
fs.writeFileSync(outFile, lines.join('\n') + '\n');
const bytes = fs.statSync(outFile).size;
console.log(`${outFile}: ${texts.length} strings (${HAND_PICKED.length} hand-picked), ${aliased} with the aliasing fix, ${bytes} bytes`);
