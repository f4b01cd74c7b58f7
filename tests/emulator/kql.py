"""
The subset of KQL (Kusto Query Language) that kvaudit's Resource Graph queries use, parsed and
evaluated for the emulator (emulator.py imports it).  Anything outside the subset raises KqlError,
which the emulator answers with Resource Graph's own 400 body (InvalidQuery), so a query that the
emulator cannot evaluate fails a test instead of passing silently.

    query     := table ( '|' operator )*          table: Resources (case-insensitive)
    operator  := 'where' expr
               | 'project' column (',' column)*    column: name | name '=' expr
               | 'extend' name '=' expr (',' name '=' expr)*
               | 'mv-expand' [name '='] expr
               | 'summarize' name '=' agg (',' name '=' agg)* [ 'by' column (',' column)* ]
               | ('order' | 'sort') 'by' expr ['asc'|'desc'] (',' ...)*
    agg       := count() | countif(expr) | make_list(expr [, maxSize]) | make_list_if(expr, expr [, maxSize])
    expr      := or-chain of and-chains of comparisons
    compare   := value [ ('==' | '!=' | '=~' | '!~' | 'has' | 'contains' | 'in' | 'in~' | '!in' | '!in~') rhs ]
    value     := literal | path | func '(' args ')' ( '[' literal ']' )* | '(' expr ')'
    path      := name ( '.' name | '[' literal ']' )*
    func      := isnotnull isnull isempty isnotempty tostring tolower toupper tobool not (one argument)
               | iff(cond, then, else) | split(string, delimiter) | bag_pack(key, value, ...)

Types are checked as Kusto checks them: string operators (=~, has, contains, in~) take strings, so a
dynamic value (properties.x) must go through tostring() first, or the query is rejected; iff() needs
branches of one type.  Aggregations exist only in summarize.  make_list()'s maxSize defaults to
1048576, Kusto's default and maximum (MAKE_LIST_MAX; a scenario may lower it to test that kvaudit
notices a cut list); a group's list keeps its first maxSize values and drops the rest, as Kusto does.
"""
import json
import re

STRING_COLUMNS = {"id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId",
                  "managedBy"}
TABLES = {"resources": "Resources"}
FUNCS = {"isnotnull": 1, "isnull": 1, "isempty": 1, "isnotempty": 1, "tostring": 1, "tolower": 1, "toupper": 1,
         "tobool": 1, "not": 1, "iff": 3, "split": 2, "bag_pack": None}   # arity (None: key/value pairs)
AGGS = {"count": (0, 0), "countif": (1, 1), "make_list": (1, 2), "make_list_if": (2, 3)}   # arity min, max
MAKE_LIST_MAX = 1048576   # make_list()'s default (and largest) maxSize in Kusto
STRING_OPS = {"=~", "!~", "has", "contains", "in~", "!in~"}


class KqlError(Exception):
    def __init__(self, message, pos=0, token=""):
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.token = token


TOKEN_RX = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<op>==|!=|=~|!~|!in~|in~|!in\b|<=|>=|[|(),=.\[\]<>])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z]+)?)
""", re.X)


def tokenize(text):
    out, i = [], 0
    while i < len(text):
        m = TOKEN_RX.match(text, i)
        if not m:
            raise KqlError("unexpected character %r" % text[i], i, text[i])
        kind = m.lastgroup
        if kind != "ws":
            val = m.group(kind)
            if kind == "str":
                val = re.sub(r"\\(.)", r"\1", val[1:-1])
            elif kind == "num":
                val = float(val) if "." in val else int(val)
            out.append((kind, val, i))
        i = m.end()
    out.append(("end", None, len(text)))
    return out


class Parser:
    def __init__(self, text):
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k=0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def fail(self, why, t=None):
        t = t or self.peek()
        raise KqlError(why, t[2], "" if t[1] is None else str(t[1]))

    def accept(self, kind, val=None):
        t = self.peek()
        if t[0] == kind and (val is None or (isinstance(t[1], str) and t[1].lower() == val)):
            self.i += 1
            return t
        return None

    def expect(self, kind, val=None):
        t = self.accept(kind, val)
        if not t:
            self.fail("expected %s" % (val or kind))
        return t

    # ---- query
    def query(self):
        t = self.expect("name")
        if t[1].lower() not in TABLES:
            self.fail("unknown table '%s' (the emulator holds Resources only)" % t[1], t)
        ops = []
        while self.accept("op", "|"):
            ops.append(self.operator())
        if self.peek()[0] != "end":
            self.fail("unexpected token")
        return ops

    def operator(self):
        t = self.expect("name")
        word = t[1].lower()
        if word == "where":
            return ("where", self.expr())
        if word == "project":
            cols = [self.column(allow_bare=True)]
            while self.accept("op", ","):
                cols.append(self.column(allow_bare=True))
            return ("project", cols)
        if word == "extend":
            cols = [self.column(allow_bare=False)]
            while self.accept("op", ","):
                cols.append(self.column(allow_bare=False))
            return ("extend", cols)
        if word == "mv-expand":
            name = None
            if self.peek()[0] == "name" and self.peek(1)[:2] == ("op", "="):
                name = self.next()[1]
                self.next()
            e = self.expr()
            if name is None:
                if e[0] != "path" or len(e[1]) != 1:
                    self.fail("mv-expand needs a column name or 'name = expression'")
                name = e[1][0]
            return ("mv-expand", name, e)
        if word == "summarize":
            aggs = [self.aggregation()]
            while self.accept("op", ","):
                aggs.append(self.aggregation())
            keys = []
            if self.accept("name", "by"):
                keys = [self.column(allow_bare=True)]
                while self.accept("op", ","):
                    keys.append(self.column(allow_bare=True))
            return ("summarize", aggs, keys)
        if word in ("order", "sort"):
            self.expect("name", "by")
            keys = []
            while True:
                e = self.expr()
                desc = True   # Kusto's default order is descending
                if self.accept("name", "asc"):
                    desc = False
                elif self.accept("name", "desc"):
                    desc = True
                keys.append((e, desc))
                if not self.accept("op", ","):
                    break
            return ("order", keys)
        self.fail("the operator '%s' is not in the subset the emulator evaluates" % t[1], t)

    def aggregation(self):
        t = self.expect("name")
        if not self.accept("op", "="):
            self.fail("the emulator needs 'name = aggregation()' in summarize", t)
        f = self.expect("name")
        low = f[1].lower()
        if low not in AGGS:
            self.fail("the aggregation '%s' is not in the subset the emulator evaluates" % f[1], f)
        self.expect("op", "(")
        args = [] if self.peek()[:2] == ("op", ")") else self.args()
        self.expect("op", ")")
        lo, hi = AGGS[low]
        if not lo <= len(args) <= hi:
            self.fail("%s() takes %d to %d arguments" % (low, lo, hi), f)
        return (t[1], low, args)

    def args(self):
        out = [self.expr()]
        while self.accept("op", ","):
            out.append(self.expr())
        return out

    def column(self, allow_bare):
        t = self.expect("name")
        if self.accept("op", "="):
            return (t[1], self.expr())
        if not allow_bare:
            self.fail("expected '=' after '%s'" % t[1])
        self.i -= 1
        e = self.value()
        if e[0] != "path":
            self.fail("a projected column needs a name")
        return (e[1][-1] if isinstance(e[1][-1], str) else t[1], e)

    # ---- expressions
    def expr(self):
        left = self.conj()
        while self.accept("name", "or"):
            left = ("or", left, self.conj())
        return left

    def conj(self):
        left = self.compare()
        while self.accept("name", "and"):
            left = ("and", left, self.compare())
        return left

    def compare(self):
        left = self.value()
        t = self.peek()
        op = None
        if t[0] == "op" and t[1] in ("==", "!=", "=~", "!~", "in~", "!in~", "!in", "<", ">", "<=", ">="):
            op = t[1]
        elif t[0] == "name" and t[1].lower() in ("has", "contains", "in"):
            op = t[1].lower()
        if op is None:
            return left
        self.next()
        if op in ("<", ">", "<=", ">="):
            self.fail("the operator '%s' is not in the subset the emulator evaluates" % op, t)
        if op in ("in", "in~", "!in", "!in~"):
            self.expect("op", "(")
            items = [self.literal()]
            while self.accept("op", ","):
                items.append(self.literal())
            self.expect("op", ")")
            return ("cmp", op, left, ("list", items))
        return ("cmp", op, left, self.value())

    def literal(self):
        t = self.next()
        if t[0] in ("str", "num"):
            return t[1]
        if t[0] == "name" and t[1].lower() in ("true", "false"):
            return t[1].lower() == "true"
        self.fail("expected a literal", t)

    def value(self):
        t = self.peek()
        if t[0] in ("str", "num"):
            self.next()
            return ("lit", t[1])
        if self.accept("op", "("):
            e = self.expr()
            self.expect("op", ")")
            return e
        if t[0] == "name":
            self.next()
            low = t[1].lower()
            if low in ("true", "false"):
                return ("lit", low == "true")
            if self.accept("op", "("):
                if low not in FUNCS:
                    self.fail("the function '%s' is not in the subset the emulator evaluates" % t[1], t)
                args = self.args()
                self.expect("op", ")")
                n = FUNCS[low]
                if (n is not None and len(args) != n) or (n is None and (not args or len(args) % 2)):
                    self.fail("%s() takes %s arguments" % (low, n if n is not None else "key/value pairs of"), t)
                e = ("call", low, args)
                while self.accept("op", "["):
                    e = ("index", e, self.literal())
                    self.expect("op", "]")
                return e
            path = [t[1]]
            while True:
                if self.accept("op", "."):
                    path.append(self.expect("name")[1])
                elif self.accept("op", "["):
                    path.append(self.literal())
                    self.expect("op", "]")
                else:
                    break
            return ("path", path)
        self.fail("expected a value", t)


def parse(text):
    """The operators of a query, or KqlError."""
    p = Parser(text)
    ops = p.query()
    check_types(ops)
    return ops


# ---- static types, as Kusto checks them
def type_of(e, cols):
    k = e[0]
    if k == "lit":
        return "string" if isinstance(e[1], str) else "bool" if isinstance(e[1], bool) else "long"
    if k == "path":
        base = cols.get(e[1][0])
        if base is None:
            raise KqlError("failed to resolve column or scalar expression named '%s'" % e[1][0], 0, e[1][0])
        if len(e[1]) > 1 and base != "dynamic":
            raise KqlError("'%s' is a %s: only a dynamic value has members or elements" % (e[1][0], base), 0, e[1][0])
        return base if len(e[1]) == 1 else "dynamic"
    if k == "index":
        if type_of(e[1], cols) != "dynamic":
            raise KqlError("only a dynamic value can be indexed", 0, "[")
        return "dynamic"
    if k == "call":
        ts = [type_of(a, cols) for a in e[2]]
        f = e[1]
        if f in ("tolower", "toupper", "split") and ts[0] != "string":
            raise KqlError("%s() expects a string argument, got %s: use tostring()" % (f, ts[0]), 0, f)
        if f == "split" and ts[1] != "string":
            raise KqlError("split() expects a string delimiter", 0, f)
        if f == "iff":
            if ts[0] != "bool":
                raise KqlError("iff() expects a boolean condition, got %s" % ts[0], 0, f)
            if ts[1] != ts[2]:
                raise KqlError("iff(): both branches must have the same type (%s, %s)" % (ts[1], ts[2]), 0, f)
            return ts[1]
        if f == "bag_pack":
            if any(t != "string" for t in ts[0::2]):
                raise KqlError("bag_pack() expects string keys", 0, f)
            return "dynamic"
        return {"tostring": "string", "tolower": "string", "toupper": "string", "split": "dynamic"}.get(f, "bool")
    if k in ("and", "or"):
        type_of(e[1], cols)
        type_of(e[2], cols)
        return "bool"
    if k == "cmp":
        lt = type_of(e[2], cols)
        if e[1] in STRING_OPS and lt != "string":
            raise KqlError("the operator '%s' needs a string on its left, got %s: use tostring()" % (e[1], lt),
                           0, e[1])
        if e[3][0] != "list":
            rt = type_of(e[3], cols)
            if e[1] in STRING_OPS and rt != "string":
                raise KqlError("the operator '%s' needs a string on its right, got %s" % (e[1], rt), 0, e[1])
        return "bool"
    return "dynamic"


def check_types(ops):
    cols = {c: "string" for c in STRING_COLUMNS}
    cols.update({c: "dynamic" for c in ("properties", "tags", "sku", "plan", "identity", "zones", "extendedLocation")})
    for op in ops:
        if op[0] == "where":
            if type_of(op[1], cols) != "bool":
                raise KqlError("the where predicate is not a boolean expression", 0, "where")
        elif op[0] == "project":
            cols = {name: type_of(e, cols) for name, e in op[1]}
        elif op[0] == "extend":
            for name, e in op[1]:
                cols[name] = type_of(e, cols)
        elif op[0] == "mv-expand":
            type_of(op[2], cols)
            cols[op[1]] = "dynamic"
        elif op[0] == "summarize":
            out = {name: type_of(e, cols) for name, e in op[2]}
            for name, f, args in op[1]:
                ts = [type_of(a, cols) for a in args]
                pred = {"countif": 0, "make_list_if": 1}.get(f)
                if pred is not None and ts[pred] != "bool":
                    raise KqlError("%s() expects a boolean predicate, got %s" % (f, ts[pred]), 0, f)
                size = {"make_list": 1, "make_list_if": 2}.get(f)
                if size is not None and len(args) > size and (args[size][0] != "lit" or ts[size] != "long"):
                    raise KqlError("%s(): maxSize must be an integer literal" % f, 0, f)
                out[name] = "long" if f in ("count", "countif") else "dynamic"
            cols = out
        elif op[0] == "order":
            for e, _ in op[1]:
                type_of(e, cols)


def types_of(e):
    """The resource types a predicate can be true for, when it says (`type =~ 'T'`, and-ed with anything,
    or-ed with another such predicate); else None."""
    if e[0] == "cmp" and e[1] in ("=~", "==") and e[2] == ("path", ["type"]) and e[3][0] == "lit" \
            and isinstance(e[3][1], str):
        return {e[3][1].lower()}
    if e[0] == "and":
        return types_of(e[1]) or types_of(e[2])
    if e[0] == "or":
        a, b = types_of(e[1]), types_of(e[2])
        return a | b if a is not None and b is not None else None
    return None


def leading_types(ops):
    """The types T when the query starts with `where type =~ 'T'` (or ==; several or-ed): the emulator then
    builds only the rows of those types, which gives the same result faster; else None."""
    if ops and ops[0][0] == "where":
        return types_of(ops[0][1])
    return None


# ---- evaluation
def get_path(row, path):
    v = row.get(path[0])
    for p in path[1:]:
        if isinstance(p, str) and isinstance(v, dict):
            v = v.get(p)
        elif isinstance(p, int) and isinstance(v, list) and -len(v) <= p < len(v):
            v = v[p]
        else:
            return None
    return v


def to_string(v):
    if type(v) is str:   # the common case first: a query calls this ~10 times a row
        return v
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def call1(f, v):
    """A one-argument function of the subset applied to v."""
    if f == "isnotnull":
        return v is not None
    if f == "isnull":
        return v is None
    if f == "isempty":
        return v is None or v == ""
    if f == "isnotempty":
        return not (v is None or v == "")
    if f == "tostring":
        return to_string(v)
    if f == "tolower":
        return None if v is None else to_string(v).lower()
    if f == "toupper":
        return None if v is None else to_string(v).upper()
    if f == "tobool":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        return None
    if f == "not":
        return not bool(v)
    raise KqlError("cannot evaluate %s()" % f)


# call1's functions that compile_expr calls directly (no dispatch on the name per row)
CALL1 = {"isnotnull": lambda v: v is not None, "isnull": lambda v: v is None, "tostring": to_string,
         "isempty": lambda v: v is None or v == "", "isnotempty": lambda v: not (v is None or v == ""),
         "tolower": lambda v: None if v is None else to_string(v).lower()}


def compare(op, left, right):
    if op == "==":
        return left is not None and left == right
    if op == "!=":
        return left is not None and left != right
    if op in ("=~", "!~"):
        same = left is not None and right is not None and to_string(left).lower() == to_string(right).lower()
        return same if op == "=~" else not same
    if op == "contains":
        return left is not None and to_string(right).lower() in to_string(left).lower()
    if op == "has":
        terms = re.split(r"[^0-9A-Za-z]+", to_string(left).lower())
        return to_string(right).lower() in terms
    raise KqlError("cannot evaluate %r" % (op,))


def compile_expr(e):
    """e as a function of a row (evaluated tens of thousands of times a query: the tree is walked once)."""
    k = e[0]
    if k == "lit":
        v = e[1]
        return lambda row: v
    if k == "path":
        path = e[1]
        if len(path) == 1:
            col = path[0]
            return lambda row: row.get(col)
        if len(path) == 2 and isinstance(path[1], str):   # properties.x: get_path without its loop
            col, key = path

            def get2(row):
                v = row.get(col)
                return v.get(key) if isinstance(v, dict) else None
            return get2
        return lambda row: get_path(row, path)
    if k in ("and", "or"):
        a, b = compile_expr(e[1]), compile_expr(e[2])
        if k == "and":
            return lambda row: bool(a(row)) and bool(b(row))
        return lambda row: bool(a(row)) or bool(b(row))
    if k == "index":
        a, i = compile_expr(e[1]), e[2]

        def index(row):
            v = a(row)
            if isinstance(i, str) and isinstance(v, dict):
                return v.get(i)
            if isinstance(i, int) and isinstance(v, list) and -len(v) <= i < len(v):
                return v[i]
            return None
        return index
    if k == "call":
        f, args = e[1], [compile_expr(a) for a in e[2]]
        if f == "iff":
            c, t, o = args
            return lambda row: t(row) if c(row) is True else o(row)
        if f == "bag_pack":
            if all(x[0] == "lit" for x in e[2][0::2]):   # literal keys, as kvaudit's: made once
                named = [(to_string(e[2][n][1]), args[n + 1]) for n in range(0, len(args), 2)]
                return lambda row: {name: vf(row) for name, vf in named}
            pairs = [(args[n], args[n + 1]) for n in range(0, len(args), 2)]
            return lambda row: {to_string(kf(row)): vf(row) for kf, vf in pairs}
        if f == "split":
            sf, df = args

            def split(row):
                v, d = sf(row), df(row)
                return None if v is None else to_string(v).split(to_string(d)) if d else [to_string(v)]
            return split
        a = args[0]
        one = CALL1.get(f)
        if one is not None:
            return lambda row: one(a(row))
        return lambda row: call1(f, a(row))
    if k == "cmp":
        op, left = e[1], compile_expr(e[2])
        if e[3][0] == "list":
            items = e[3][1]
            want = op in ("in", "in~")
            if op in ("in~", "!in~"):
                low = {to_string(x).lower() for x in items}

                def in_ci(row):
                    v = left(row)
                    return (v is not None and to_string(v).lower() in low) == want
                return in_ci

            def in_cs(row):
                v = left(row)
                return (v is not None and v in items) == want
            return in_cs
        if op in ("=~", "!~") and e[3][0] == "lit" and e[3][1] is not None:
            lit, same = to_string(e[3][1]).lower(), op == "=~"

            def eq_ci(row):
                v = left(row)
                if type(v) is str:
                    return (v.lower() == lit) == same
                return (v is not None and to_string(v).lower() == lit) == same
            return eq_ci
        right = compile_expr(e[3])
        return lambda row: compare(op, left(row), right(row))
    raise KqlError("cannot evaluate %r" % (k,))


def evaluate(e, row):
    return compile_expr(e)(row)


def sort_key(v):
    # nulls first in ascending order; numbers before strings
    if v is None:
        return (0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (1, v)
    return (2, to_string(v))


def summarize(op, rows, list_max):
    """Groups rows by the keys (in the order each group first appears) and aggregates each group."""
    _, aggs, keys = op
    keyf = [(name, compile_expr(e)) for name, e in keys]
    groups = {}
    for r in rows:
        vals = [f(r) for _, f in keyf]
        k = tuple(v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in vals)
        if k not in groups:
            groups[k] = ({name: v for (name, _), v in zip(keyf, vals)}, [])
        groups[k][1].append(r)
    plan = []
    for name, f, args in aggs:
        fns = [compile_expr(a) for a in args]
        pred = fns[0] if f == "countif" else fns[1] if f == "make_list_if" else None
        size = args[-1][1] if len(args) == {"make_list": 2, "make_list_if": 3}.get(f) else MAKE_LIST_MAX
        plan.append((name, f, fns[0] if f.startswith("make_list") else None, pred, max(0, min(size, list_max))))
    out = []
    for first, members in groups.values():
        o = dict(first)
        for name, f, value, pred, size in plan:
            chosen = members if pred is None else [r for r in members if pred(r) is True]
            if value is None:
                o[name] = len(chosen)
                continue
            o[name] = [v for v in (value(r) for r in chosen) if v is not None][:size]
        out.append(o)
    return out


def run(ops, rows, list_max=MAKE_LIST_MAX):
    """Applies the parsed operators to rows (dicts); returns new rows.  list_max caps make_list() below
    its maxSize (a scenario's graphMakeListMax)."""
    out = list(rows)
    for op in ops:
        if op[0] == "where":
            f = compile_expr(op[1])
            out = [r for r in out if f(r) is True]
        elif op[0] == "project":
            cols = [(name, compile_expr(e)) for name, e in op[1]]
            out = [{name: f(r) for name, f in cols} for r in out]
        elif op[0] == "extend":
            cols = [(name, compile_expr(e)) for name, e in op[1]]
            nxt = []
            for r in out:
                r = dict(r)
                for name, f in cols:
                    r[name] = f(r)
                nxt.append(r)
            out = nxt
        elif op[0] == "mv-expand":
            f = compile_expr(op[2])
            nxt = []
            for r in out:
                v = f(r)
                for x in (v if isinstance(v, list) else [v] if v is not None else []):
                    r2 = dict(r)
                    r2[op[1]] = x
                    nxt.append(r2)
            out = nxt
        elif op[0] == "summarize":
            out = summarize(op, out, list_max)
        elif op[0] == "order":
            for e, desc in reversed(op[1]):
                f = compile_expr(e)
                out.sort(key=lambda r: sort_key(f(r)), reverse=desc)
    return out


def error_body(err, correlation_id, timestamp):
    """Resource Graph's 400 body for a query it cannot run."""
    return {"error": {
        "code": "BadRequest",
        "message": "Please provide below info when asking for support: timestamp = %s, correlationId = %s." % (
            timestamp, correlation_id),
        "details": [
            {"code": "InvalidQuery",
             "message": "Query is invalid. Please refer to the documentation for the Azure Resource Graph service "
                        "and fix the error before retrying."},
            {"code": "ParserFailure", "message": err.message, "line": 1,
             "characterPositionInLine": err.pos, "token": err.token},
        ]}}
