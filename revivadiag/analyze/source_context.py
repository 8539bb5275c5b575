"""Where a line of source runs and whether it can hold a service URL at all.

* :func:`language` — how a file is read (``js``, ``markup``, ``py``, ``go``, ``env``, ``yaml``,
  ``toml``, ``conf``, ``docker``, ``json``);
* :func:`excluded` — files that are never findings: tests, CI pipelines, stories, mocks;
* :func:`file_side` / :class:`Regions` — ``client`` (runs in the browser), ``server`` or
  ``config``, by the frameworks' conventions: Next.js ``pages/api/``, ``app/**/route.ts``,
  app-router components without ``'use client'``, ``server-only``, ``getServerSideProps``;
  Nuxt ``server/``; SvelteKit ``+page.server.ts``, ``+server.ts``, ``hooks.server``; Astro
  frontmatter; ``server/``, ``backend/`` trees and backend packages; Python and Go;
* :class:`LineFilter` — comments blanked (``//``, ``/* */``, ``#``, ``<!-- -->``, docstrings)
  and lines that name an address without connecting to it: listen/bind addresses, CORS
  allow-lists, log and error messages, ``curl``/``wget`` smoke tests.

>>> language("web/src/App.vue"), language("Dockerfile.prod"), language("nginx/default.conf")
('markup', 'docker', 'conf')
>>> file_side("apps/web/app/api/users/route.ts", "js", "frontend", {"next"})
'server'
>>> excluded("api/tests/test_users.py"), excluded(".github/workflows/ci.yml")
(True, True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from revivadiag.analyze.source_files import is_dockerfile, is_env_name, is_json_config

JS_EXTS = frozenset({".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".mts", ".cts"})
MARKUP_EXTS = frozenset({".vue", ".svelte", ".astro", ".html", ".htm"})
CLIENT_ENV_PREFIXES = ("NEXT_PUBLIC_", "VITE_", "REACT_APP_", "PUBLIC_", "NUXT_PUBLIC_",
                       "EXPO_PUBLIC_", "GATSBY_", "VUE_APP_", "NG_APP_")

_TEST_DIRS = frozenset({"test", "tests", "__tests__", "__test__", "spec", "specs", "e2e",
                        "cypress", "playwright", "__mocks__", "mocks", "testdata", "fixtures",
                        "test-utils", "testing", "stories", "__fixtures__", "examples",
                        "example", "benchmarks"})
_TEST_FILE = re.compile(r"(\.(test|spec|e2e|stories|story|mock)\.[cm]?[jt]sx?$)|(^test_.*\.py$)|"
                        r"(^tests?([-_.][\w.-]+)?\.[cm]?[jt]sx?$)|"
                        r"(_test\.(py|go)$)|(^conftest\.py$)|(^tests?\.py$)|(^(jest|vitest|playwright|cypress|"
                        r"karma)\.config\.)|(^setupTests\.)")
_CI_FILES = frozenset({".gitlab-ci.yml", ".travis.yml", "Jenkinsfile", "azure-pipelines.yml",
                       "bitbucket-pipelines.yml", ".drone.yml", "cloudbuild.yaml",
                       "appveyor.yml", "codecov.yml", ".codecov.yml", "renovate.json",
                       ".pre-commit-config.yaml", "mkdocs.yml", "docusaurus.config.js"})
_CI_DIRS = frozenset({".github", ".circleci", ".gitlab", ".buildkite", ".husky", ".devcontainer"})


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def language(path: str) -> str | None:
    """How the file at ``path`` is read; None for files the audit does not read."""
    name = path.rsplit("/", 1)[-1]
    suffix = _suffix(name)
    if is_env_name(name):
        return "env"
    if is_dockerfile(name):
        return "docker"
    if name == "package.json":
        return "json"
    if is_json_config(path):
        return "jsonconfig"
    if name == "Caddyfile" or name.lower().endswith((".caddyfile", ".conf.template", ".conf.tpl")):
        return "conf"
    if suffix in JS_EXTS:
        return "js"
    if suffix in MARKUP_EXTS:
        return "markup"
    if suffix == ".py":
        return "py"
    if suffix == ".go":
        return "go"
    if suffix in (".yml", ".yaml"):
        return "yaml"
    if suffix == ".toml":
        return "toml"
    if suffix in (".conf", ".ini", ".cfg"):
        return "conf"
    return None


def excluded(path: str) -> bool:
    """Tests, mocks, stories, examples and CI pipelines: never findings."""
    parts = path.split("/")
    name, dirs = parts[-1], parts[:-1]
    if name in _CI_FILES or not _CI_DIRS.isdisjoint(dirs):
        return True
    if any(part.lower() in _TEST_DIRS for part in dirs):
        return True
    return bool(_TEST_FILE.search(name))


_CONFIG_JS = re.compile(r"^(vite|next|nuxt|svelte|astro|webpack|rollup|vue|remix|quasar|angular|"
                        r"tailwind|postcss|babel|craco|rsbuild|farm|tsup)\.config\.[cm]?[jt]s$|"
                        r"^setupProxy\.[jt]s$|^proxy\.conf\.(js|json)$")
_SERVER_NAME = re.compile(r"(^\+(page|layout)\.server\.|^\+server\.|^hooks\.server\.|"
                          r"\.server\.[cm]?[jt]sx?$|^(middleware|instrumentation)\.[jt]s$|^route\.[jt]sx?$|"
                          r"^server\.[cm]?[jt]s$|^(main|app)\.(module|controller|service)\.ts$)")
_SERVER_DIRS = frozenset({"server", "backend", "servers", "functions", "lambda", "lambdas",
                          "netlify", "cmd", "internal", "workers", "worker", "prisma", "drizzle",
                          "migrations", "scripts", "bin"})


def file_side(path: str, lang: str, package: str = "", deps: Iterable[str] = ()) -> str:
    """client, server or config for a whole file (regions inside it may differ).

    ``package`` is the role of the nearest ``package.json`` (frontend/backend/''), ``deps`` the
    frameworks it depends on.
    """
    all_parts = path.split("/")
    parts = [s.lower() for s in all_parts[:-1]]
    name = all_parts[-1]
    if lang in ("env", "yaml", "toml", "conf", "docker", "json", "jsonconfig"):
        return "config"
    if lang in ("py", "go"):
        return "server"
    if _CONFIG_JS.match(name):
        return "config"
    if _SERVER_NAME.search(name) or any(s in _SERVER_DIRS for s in parts):
        return "server"
    joined = "/" + "/".join(parts) + "/"
    if "/pages/api/" in joined or "/app/api/" in joined or "/routes/api/" in joined:
        return "server"
    if package == "backend":
        return "server"
    if "api" in parts and package != "frontend" and lang == "js":
        return "server"
    if lang == "js" and "next" in set(deps) and "/app/" in joined:
        return "server"  # app-router components are server components unless 'use client'
    return "client"


# ---------------------------------------------------------------- regions inside a file

_USE_CLIENT = re.compile(r"""^\s*['"]use client['"]""")
_SERVER_ONLY = re.compile(r"""^\s*(import\s+['"]server-only['"]|['"]use server['"])""")
_SERVER_FN = re.compile(r"export\s+(async\s+)?(function\s+|const\s+)(getServerSideProps|"
                        r"getStaticProps|getStaticPaths|generateMetadata|generateStaticParams|"
                        r"loader|action)\b")


class Regions:
    """Side of each line of one file: the file's side, refined by what the file says.

    ``'use client'`` makes an app-router file client code; ``server-only``/``'use server'``
    server code; a ``getServerSideProps`` (or Remix ``loader``) body is server code; an Astro
    file's frontmatter (between the first two ``---``) is server code.
    """

    def __init__(self, path: str, lang: str, side: str, lines: list[str]) -> None:
        self.side = side
        head = lines[:5]
        if lang == "js" and any(_USE_CLIENT.match(x) for x in head):
            self.side = "client"
        elif lang == "js" and any(_SERVER_ONLY.match(x) for x in lines[:20]):
            self.side = "server"
        self._server: set[int] = set()
        if path.endswith(".astro") and lines and lines[0].strip() == "---":
            end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), 0)
            self._server.update(range(0, end + 1))
        if lang in ("js", "markup") and self.side == "client" and any(
                "export" in x and _SERVER_FN.search(x) for x in lines):
            self._server_functions(lines)

    def _server_functions(self, lines: list[str]) -> None:
        depth, start = 0, -1
        for i, line in enumerate(lines):
            if start < 0 and _SERVER_FN.search(line):
                start, depth = i, 0
            if start >= 0:
                self._server.add(i)
                depth += line.count("{") - line.count("}")
                if depth <= 0 and "{" in "".join(lines[start:i + 1]):
                    start = -1

    def side_of(self, index: int) -> str:
        """The side of the 0-based line ``index``."""
        return "server" if index in self._server else self.side


# ---------------------------------------------------------------- comments


_DOCSTRING_PREFIXES = frozenset({"", "r", "u", "b", "f", "rb", "br", "rf", "fr"})


class CommentStripper:
    """Blanks comments line by line, keeping columns; remembers block comments across lines."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.block = ""  # the closing delimiter of an open block comment
        self.string = ""  # the closing delimiter of an open multi-line string
        self.slashes = lang in ("js", "markup", "go", "jsonconfig")
        self.hash = lang in ("py", "env", "yaml", "toml", "conf", "docker")
        self.html = lang == "markup"

    def strip(self, line: str) -> str:
        """``line`` with comment characters replaced by spaces."""
        out = list(line)
        i, n, quote = 0, len(line), ""
        while i < n:
            if self.string:  # inside a multi-line string: its text is code, not comment
                j = line.find(self.string, i)
                if j < 0:
                    break
                i, self.string = j + len(self.string), ""
                continue
            if self.block:
                j = line.find(self.block, i)
                end = n if j < 0 else j + len(self.block)
                out[i:end] = " " * (end - i)
                if j >= 0:
                    self.block = ""
                i = end
                continue
            c = line[i]
            if quote:
                if c == "\\":
                    i += 2
                    continue
                if c == quote:
                    quote = ""
                i += 1
                continue
            triple = self.lang == "py" and line.startswith(('"""', "'''"), i)
            if triple and line[:i].strip().lower() not in _DOCSTRING_PREFIXES:
                end = line.find(line[i:i + 3], i + 3)  # a string value, e.g. SQL = """...
                if end < 0:
                    self.string = line[i:i + 3]
                    break
                i = end + 3
                continue
            if triple:
                self.block = line[i:i + 3]
                end = line.find(self.block, i + 3)
                if end >= 0:
                    self.block = ""
                    out[i:end + 3] = " " * (end + 3 - i)
                    i = end + 3
                else:
                    out[i:] = " " * (n - i)
                    i = n
                continue
            if self.slashes and line.startswith("/*", i):
                self.block = "*/"
                continue
            if self.html and line.startswith("<!--", i):
                self.block = "-->"
                continue
            if ((self.slashes and line.startswith("//", i) and (i == 0 or line[i - 1] != ":"))
                    or (self.hash and c == "#" and (i == 0 or line[i - 1].isspace()))):
                out[i:] = " " * (n - i)
                break
            if c in "'\"`" and not (self.html and c == "'" and self._in_text(line, i)):
                quote = c
            i += 1
        if quote == "`" and self.slashes:
            self.string = "`"  # a template literal going on to the next line
        return "".join(out)

    @property
    def active(self) -> bool:
        """Inside a block comment or a multi-line string (the next line depends on this one)."""
        return bool(self.block or self.string)

    @staticmethod
    def _in_text(line: str, i: int) -> bool:
        """An apostrophe in markup text ("don't") opens no string."""
        return i > 0 and line[i - 1].isalpha()


def code_part(line: str, lang: str) -> str:
    """``line`` with its comment blanked out (same length, so columns stay right).

    >>> code_part("a('http://x') // c", "js").rstrip()
    "a('http://x')"
    """
    stripper = CommentStripper("js" if lang == "js" else lang)
    stripped = line.lstrip()
    if lang == "js" and stripped.startswith("*"):
        return " " * len(line)
    return stripper.strip(line)


# ---------------------------------------------------------------- lines that do not connect

_LISTEN = re.compile(
    r"\.listen\s*\(|\bListen(AndServe(TLS)?)?\s*\(|^\s*listen\s|\bbind\s*[=:]|--bind\b|"
    r"--host\b|uvicorn\.run\s*\(|\b(app|server|socketio)\.run\s*\(|\bserve\s*\(\s*\{|"
    r"\bhostname\s*:\s*['\"]0\.0\.0\.0|\bBun\.serve\b|\bweb\.run_app\s*\(|listen_addresses|"
    r"\bserver_name\b|\bSERVER_NAME\b|\blisten\s*:|\baddServer\s*\(|\bHEALTHCHECK\b", re.I)
_CORS = re.compile(
    r"\bcors\b|\borigins?\b|allow_?origins?|allowed_?origins?|allow_origin_regex|trusted_?origins|"
    r"\bALLOWED_HOSTS\b|CSRF_TRUSTED|Access-Control-Allow-Origin|\bCORS_|_ORIGINS?\b|"
    r"corsOptions|enableCors|\bredirect_uris?\b|callbackURL|\bcallback_url\b|"
    r"\b(?:[a-z]+_)?allow(?:ed)?\w*|(?-i:[a-z]Allow(?:ed)?)|white_?list", re.I)
_LOG = re.compile(
    r"\bconsole\.(log|info|warn|error|debug|trace)\s*\(|\b(logger|log|logging|slog|this\.logger|"
    r"Logger|app\.log|fastify\.log|server\.log)\.\w+\s*\(|\bprint(ln|f)?\s*\(|\bfmt\.F?Print\w*\s*\(|"
    r"\b(click|typer)\.echo\s*\(|\becho\s|\bErrorf?\s*\(|\bthrow\s+new\s+\w*Error\s*\(|"
    r"\braise\s+\w+\s*\(|\bwarnings\.warn\s*\(|\bpanic\s*\(|\blog\s*\(", re.I)
_SMOKE = re.compile(r"\b(curl|wget|httpie|nc|netcat|wait-for-it|wait-on|dockerize)\b", re.I)
_OPEN = re.compile(r"[\[({]")


class Gate:
    """A regex run only when one of its keywords is in the lowercased text (a cheap test first).

    >>> Gate(re.compile(r"\\bcors\\b", re.I), "cors").search("app.use(CORS())") is not None
    True
    """

    def __init__(self, pattern: re.Pattern[str], *keys: str) -> None:
        self.pattern, self.keys = pattern, keys

    def search(self, text: str, low: str | None = None) -> re.Match[str] | None:
        """``pattern.search(text)`` when a keyword occurs in ``low`` (``text.lower()``)."""
        low = text.lower() if low is None else low
        if not any(k in low for k in self.keys):
            return None
        return self.pattern.search(text)


LISTEN = Gate(_LISTEN, "listen", "bind", "--host", ".run", "serve", "hostname", "server_name",
              "addserver", "healthcheck")
CORS = Gate(_CORS, "cors", "origin", "allow", "csrf", "redirect", "callback", "whitelist")
_CONTINUATION = re.compile(r"^\s*(\?\?|\?|:|\|\||&&|\+|\.(?!\.))")
LOG = Gate(_LOG, "log", "print", "echo", "error", "raise", "warn", "panic")
SMOKE = Gate(_SMOKE, "curl", "wget", "http", "nc", "wait", "dockerize")


class LineFilter:
    """Decides, line by line, whether a line's addresses are connections the code makes.

    A CORS list or a log call that opens a bracket covers the lines until it closes.
    """

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.block_depth = 0
        self.block_lines = 0
        self.last = ""
        self.last_index = -2

    def reason(self, code: str, index: int = -1) -> str:
        """'' when the line may connect somewhere, else why it does not.

        ``index`` is the line's 0-based number: a line continuing the expression of the line
        just before (``? [...]``, ``: [...]``) shares that line's reason.
        """
        why = self._reason(code)
        follows = index >= 0 and index == self.last_index + 1
        if not why and follows and self.last in ("cors", "log") and _CONTINUATION.match(code):
            why = self.last
        self.last, self.last_index = why, index
        return why

    def _reason(self, code: str) -> str:
        if self.block_depth > 0:
            self._track(code)
            return "cors/log block"
        low = code.lower()
        for name, gate in (("listen", LISTEN), ("cors", CORS), ("log", LOG),
                           ("smoke test", SMOKE)):
            m = gate.search(code, low)
            if m:
                if name in ("cors", "log"):
                    self.block_depth, self.block_lines = 0, 0
                    self._track(code[m.start():])
                return name
        return ""

    def _track(self, code: str) -> None:
        text = re.sub(r"(['\"`]).*?\1", "", code)
        self.block_depth += len(_OPEN.findall(text)) - len(re.findall(r"[\])}]", text))
        self.block_lines += 1
        if self.block_lines > 40:  # bounded: an unbalanced bracket ends the block
            self.block_depth = 0
        self.block_depth = max(self.block_depth, 0)
