#!/usr/bin/env bash
# docs.sh: the documentation cannot rot.  For README.md and every docs/*.md
# page (the DOCS CONVENTION, docs/README.md "How the examples are tested"):
#
#   - a fenced block with info string `sql` is run by psql (-X, ON_ERROR_STOP,
#     VERBOSITY verbose, LOCATION lines dropped) as the superuser, in page
#     order, in a fresh database of the page's own (createdb + CREATE
#     EXTENSION procq), and must succeed; `sql fails` must fail;
#   - a fenced `sh` block is run by bash -euo pipefail with bin/ first on
#     PATH and the page's database in PGDATABASE (`sh fails`: must fail);
#   - a fenced `output` block right after such a block (blank lines allowed)
#     must be exactly what it printed (stdout and stderr, in order), compared
#     line by line after trailing whitespace and leading/trailing blank lines
#     are trimmed;
#   - `sql skip`, `sh skip` (and every other info string: text, ini, yaml,
#     python, js...) are shown, never run (an `output` block after a skipped
#     block is shown, not compared); an `output` block that follows no sql or
#     sh block is an error;
#   - a page whose first line is `<!-- docs-test: skip, run by test/t/N.pl -->`
#     is not run here (that test runs it); a line `<!-- docs-test: roles A B -->`
#     names the roles a page creates: dropped before it runs and after it
#     passed (roles belong to the cluster, not to the page's database);
#   - every relative link of every page resolves: the file exists, and a
#     #anchor names a heading (GitHub's slugs) or an <a id> of the target;
#   - docs/reference.md names every function, view, table and type of the
#     procq schema, every procq.* setting and every job status.
#
# It runs in make test's cluster (test/ext: PGHOST, PGPORT, PGUSER=postgres,
# PQ_PGBIN).  Failures name the page and line.  Exit 0 when all holds.
#
#   test/ext/docs.sh [PAGE...]     only the given pages (links: all pages)
#   DOCS_FILL=1 test/ext/docs.sh   an author's aid: rewrite each output block
#                                  with what its block printed, then report
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PQ_PGBIN=${PQ_PGBIN:-/usr/lib/postgresql/15/bin}
export PQ_PGBIN
exec /usr/bin/python3 - "$@" <<'PYTHON'
import difflib, os, re, subprocess, sys, unicodedata

ROOT = os.getcwd()
PGBIN = os.environ["PQ_PGBIN"]
FILL = bool(os.environ.get("DOCS_FILL"))
SKIP_RE = re.compile(r"^<!--\s*docs-test:\s*skip\b")
RUN_KINDS = {"sql", "sh"}
failures = []


def fail(page, line, msg, detail=""):
    text = "%s:%d: %s" % (page, line, msg)
    if detail:
        text += "\n" + "\n".join("    " + l for l in detail.rstrip("\n").split("\n"))
    failures.append(text)
    print("FAIL " + text, flush=True)


def pages():
    found = ["README.md"]
    if os.path.isdir("docs"):
        found += sorted("docs/" + f for f in os.listdir("docs") if f.endswith(".md"))
    return found


def blocks(path):
    """Fenced blocks of a page: dicts with info words, body, line numbers
    (1-based: the opening fence, the first body line) and the index of the
    line after the closing fence."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})\s*(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).strip()
        j = i + 1
        while j < len(lines) and not re.match(
                r"^\s*" + re.escape(fence[0]) + "{%d,}\\s*$" % len(fence), lines[j]):
            j += 1
        if j == len(lines):
            fail(path, i + 1, "fenced block never closed")
            break
        body = [l[len(indent):] if l.startswith(indent) else l for l in lines[i + 1:j]]
        out.append({"info": info.split(), "body": "\n".join(body), "start": i + 1,
                    "first": i + 2, "end": j + 1, "after": j + 1})
        i = j + 1
    # which block follows which with only blank lines between
    for k in range(len(out) - 1):
        between = lines[out[k]["after"]:out[k + 1]["start"] - 1]
        out[k]["next_adjacent"] = all(not l.strip() for l in between)
    if out:
        out[-1]["next_adjacent"] = False
    return lines, out


def normalize(text):
    lines = [l.rstrip() for l in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def clean_psql(text):
    """psql's verbose messages without their LOCATION lines, and without the
    00000 of notices (the SQLSTATE of errors and warnings stays)."""
    keep = []
    for l in text.split("\n"):
        if re.match(r"^LOCATION:\s", l):
            continue
        l = re.sub(r"^psql:<stdin>:\d+: ", "", l)
        l = re.sub(r"^(NOTICE|INFO|LOG|DEBUG):  00000: ", r"\1:  ", l)
        keep.append(l)
    return "\n".join(keep)


def psql_cmd(db, *extra):
    return [os.path.join(PGBIN, "psql"), "-X", "-v", "ON_ERROR_STOP=1",
            "-v", "VERBOSITY=verbose", "-d", db] + list(extra)


def run_block(kind, body, db):
    env = dict(os.environ)
    env["PGDATABASE"] = db
    if kind == "sql":
        p = subprocess.run(psql_cmd(db), input=body + "\n", stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
        return p.returncode, clean_psql(p.stdout)
    env["PATH"] = os.path.join(ROOT, "bin") + os.pathsep + PGBIN + os.pathsep + env["PATH"]
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", body], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=env, timeout=300,
                       cwd=ROOT)
    return p.returncode, p.stdout


def admin(sql, db="postgres"):
    p = subprocess.run(psql_cmd(db, "-A", "-t", "-q", "-c", sql), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise RuntimeError("psql -c %r: %s" % (sql, p.stdout))
    return p.stdout


def page_db(page):
    base = os.path.basename(page).lower().rsplit(".", 1)[0]
    if not page.startswith("docs/"):
        base = "top_" + base        # README.md and docs/README.md apart
    name = "docs_" + re.sub(r"[^a-z0-9_]", "_", base)
    return name[:63]


def drop_page(db, roles):
    """Drop the page's database, the databases its sh blocks made (named
    after it: DB_*) and the cluster-wide roles it creates."""
    others = admin("SELECT datname FROM pg_database WHERE starts_with(datname, '%s_')" % db)
    for d in [db] + others.split():
        subprocess.run([os.path.join(PGBIN, "dropdb"), "--if-exists", d], check=True,
                       stderr=subprocess.DEVNULL)
    for r in roles:
        admin('DROP ROLE IF EXISTS "%s"' % r)


def run_page(page):
    lines, bl = blocks(page)
    if lines and SKIP_RE.match(lines[0]):
        print("skip %s (%s)" % (page, lines[0].strip()), flush=True)
        return
    runnable = [b for b in bl if b["info"] and b["info"][0] in RUN_KINDS
                and "skip" not in b["info"][1:]]
    # orphan output blocks
    for k, b in enumerate(bl):
        if b["info"][:1] == ["output"]:
            prev = bl[k - 1] if k else None
            if not (prev and prev["next_adjacent"] and prev["info"][:1] and
                    prev["info"][0] in RUN_KINDS):
                fail(page, b["start"], "output block follows no sql or sh block")
        elif b["info"] and b["info"][0] in RUN_KINDS:
            bad = [w for w in b["info"][1:] if w not in ("fails", "skip")]
            if bad:
                fail(page, b["start"], "unknown words in info string: %s" % " ".join(bad))
    if not runnable:
        print("ok   %s (no examples)" % page, flush=True)
        return
    db = page_db(page)
    roles = []
    for l in lines:
        m = re.match(r"^<!--\s*docs-test:\s*roles\s+([\w\s,]+?)\s*-->", l)
        if m:
            roles += re.split(r"[\s,]+", m.group(1).strip())
    drop_page(db, roles)
    subprocess.run([os.path.join(PGBIN, "createdb"), db], check=True)
    admin("CREATE EXTENSION procq", db)
    fills = []
    n_before = len(failures)
    ran = 0
    for k, b in enumerate(bl):
        if b not in runnable:
            continue
        kind, must_fail = b["info"][0], "fails" in b["info"][1:]
        rc, out = run_block(kind, b["body"], db)
        ran += 1
        if must_fail and rc == 0:
            fail(page, b["start"], "%s block was to fail but succeeded" % kind, out)
        elif not must_fail and rc != 0:
            fail(page, b["start"], "%s block failed (exit %d)" % (kind, rc), out)
        nxt = bl[k + 1] if k + 1 < len(bl) else None
        if nxt and b["next_adjacent"] and nxt["info"][:1] == ["output"]:
            want, got = normalize(nxt["body"]), normalize(out)
            if FILL:
                if want != got:
                    fills.append((nxt, got))
            elif want != got:
                diff = "\n".join(difflib.unified_diff(
                    want, got, "expected (%s:%d)" % (page, nxt["first"]), "got", lineterm=""))
                fail(page, nxt["start"], "output of the %s block at line %d differs"
                     % (kind, b["start"]), diff)
        if len(failures) > n_before and not FILL:
            print("     %s: stopped at its first failure; its database %s is kept"
                  % (page, db), flush=True)
            return
    if fills:
        for nxt, got in sorted(fills, key=lambda f: -f[0]["start"]):
            lines[nxt["start"]:nxt["end"] - 1] = got
        open(page, "w", encoding="utf-8").write("\n".join(lines))
        print("fill %s: %d output blocks rewritten" % (page, len(fills)), flush=True)
    if len(failures) == n_before:
        print("ok   %s (%d blocks run)" % (page, ran), flush=True)
        drop_page(db, roles)


def slug(text):
    """GitHub's anchor of a heading."""
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.strip().lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(path):
    lines, bl = blocks(path)
    inside = set()
    for b in bl:
        inside.update(range(b["start"], b["end"] + 1))
    seen, out = {}, set()
    for n, l in enumerate(lines, 1):
        if n in inside:
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", l)
        if m:
            s = slug(m.group(1))
            if s in seen:
                seen[s] += 1
                s = "%s-%d" % (s, seen[s])
            else:
                seen[s] = 0
            out.add(s)
        for a in re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", l):
            out.add(a)
    return out


def check_links(all_pages):
    cache = {}
    for page in all_pages:
        lines, bl = blocks(page)
        inside = set()
        for b in bl:
            inside.update(range(b["start"], b["end"] + 1))
        for n, l in enumerate(lines, 1):
            if n in inside:
                continue
            l = re.sub(r"`[^`]*`", "", l)
            for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", l):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # http:, https:, mailto:
                path, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
                if not os.path.exists(dest):
                    fail(page, n, "link to %s: no such file (%s)" % (target, dest))
                    continue
                if anchor and dest.endswith(".md"):
                    if dest not in cache:
                        cache[dest] = anchors(dest)
                    if anchor not in cache[dest]:
                        fail(page, n, "link to %s: %s has no heading with anchor #%s"
                             % (target, dest, anchor))


def check_reference():
    ref = "docs/reference.md"
    if not os.path.exists(ref):
        fail(ref, 0, "missing")
        return
    text = open(ref, encoding="utf-8").read()
    db = "docs__catalog"
    drop_page(db, [])
    subprocess.run([os.path.join(PGBIN, "createdb"), db], check=True)
    admin("CREATE EXTENSION procq", db)
    objs = admin("""
        LOAD 'procq';
        SELECT 'function ' || p.proname FROM pg_proc p
         WHERE p.pronamespace = 'procq'::regnamespace AND p.prorettype <> 'trigger'::regtype
           AND p.proname <> 'jobs_row_check'
        UNION SELECT 'relation ' || c.relname FROM pg_class c
         WHERE c.relnamespace = 'procq'::regnamespace AND c.relkind IN ('r', 'v', 'p')
        UNION SELECT 'type ' || t.typname FROM pg_type t
         WHERE t.typnamespace = 'procq'::regnamespace AND t.typtype = 'e'
        UNION SELECT 'setting ' || name FROM pg_settings WHERE name LIKE 'procq.%'
        UNION SELECT 'status ' || e.enumlabel FROM pg_enum e
         WHERE e.enumtypid = 'procq.job_status'::regtype
        ORDER BY 1""", db).split()
    drop_page(db, [])
    for kind, name in zip(objs[0::2], objs[1::2]):
        if kind == "status":
            ok = ("`%s`" % name) in text
        elif kind == "setting":
            ok = ("`%s`" % name) in text
        else:
            ok = re.search(r"`procq\.%s[`(]" % re.escape(name), text) is not None
        if not ok:
            fail(ref, 0, "%s %s of the procq schema is not documented (no `procq.%s` in it)"
                 % (kind, name, name) if kind not in ("status", "setting") else
                 "%s %s is not documented (no `%s` in it)" % (kind, name, name))


only = sys.argv[1:]
all_pages = pages()
for page in (only or all_pages):
    if not os.path.exists(page):
        fail(page, 0, "no such page")
        continue
    try:
        run_page(page)
    except subprocess.TimeoutExpired as e:
        fail(page, 0, "a block ran over 300 s: %s" % e)
check_links(all_pages)
if not only:
    check_reference()
print("docs.sh: %d failure%s" % (len(failures), "" if len(failures) == 1 else "s"))
if failures:
    print("\n".join("FAILED: " + f.split("\n")[0] for f in failures))
sys.exit(1 if failures else 0)
PYTHON
