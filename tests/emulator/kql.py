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
               | ('order' | 'sort') 'by' expr ['asc'|'desc'] (',' ...)*
    expr      := or-chain of and-chains of comparisons
    compare   := value [ ('==' | '!=' | '=~' | '!~' | 'has' | 'contains' | 'in' | 'in~' | '!in' | '!in~') rhs ]
    value     := literal | path | func '(' args ')' | '(' expr ')'
    path      := name ( '.' name | '[' literal ']' )*
    func      := isnotnull isnull isempty isnotempty tostring tolower toupper tobool not

Types are checked as Kusto checks them: string operators (=~, has, contains, in~) take strings, so a
dynamic value (properties.x) must go through tostring() first, or the query is rejected.
"""
import json
import re

STRING_COLUMNS = {"id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId",
                  "managedBy"}
TABLES = {"resources": "Resources"}
FUNCS = {"isnotnull", "isnull", "isempty", "isnotempty", "tostring", "tolower", "toupper", "tobool", "not"}
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
                arg = self.expr()
                self.expect("op", ")")
                return ("call", low, arg)
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
        return base if len(e[1]) == 1 else "dynamic"
    if k == "call":
        t = type_of(e[2], cols)
        if e[1] in ("tolower", "toupper") and t != "string":
            raise KqlError("%s() expects a string argument, got %s: use tostring()" % (e[1], t), 0, e[1])
        return {"tostring": "string", "tolower": "string", "toupper": "string"}.get(e[1], "bool")
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
        elif op[0] == "order":
            for e, _ in op[1]:
                type_of(e, cols)


def leading_type(ops):
    """T when the query starts with `where type =~ 'T'` (or ==): the emulator then builds only the rows of
    that type, which gives the same result faster; else None."""
    if ops and ops[0][0] == "where":
        e = ops[0][1]
        if (e[0] == "cmp" and e[1] in ("=~", "==") and e[2] == ("path", ["type"]) and e[3][0] == "lit"
                and isinstance(e[3][1], str)):
            return e[3][1].lower()
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
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def evaluate(e, row):
    k = e[0]
    if k == "lit":
        return e[1]
    if k == "path":
        return get_path(row, e[1])
    if k == "and":
        return bool(evaluate(e[1], row)) and bool(evaluate(e[2], row))
    if k == "or":
        return bool(evaluate(e[1], row)) or bool(evaluate(e[2], row))
    if k == "call":
        v = evaluate(e[2], row)
        f = e[1]
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
    if k == "cmp":
        op, left = e[1], evaluate(e[2], row)
        if e[3][0] == "list":
            items = e[3][1]
            if op in ("in~", "!in~"):
                hit = left is not None and to_string(left).lower() in [to_string(x).lower() for x in items]
            else:
                hit = left is not None and left in items
            return hit if op in ("in", "in~") else not hit
        right = evaluate(e[3], row)
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
    raise KqlError("cannot evaluate %r" % (k,))


def sort_key(v):
    # nulls first in ascending order; numbers before strings
    if v is None:
        return (0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (1, v)
    return (2, to_string(v))


def run(ops, rows):
    """Applies the parsed operators to rows (dicts); returns new rows."""
    out = list(rows)
    for op in ops:
        if op[0] == "where":
            out = [r for r in out if evaluate(op[1], r) is True]
        elif op[0] == "project":
            out = [{name: evaluate(e, r) for name, e in op[1]} for r in out]
        elif op[0] == "extend":
            nxt = []
            for r in out:
                r = dict(r)
                for name, e in op[1]:
                    r[name] = evaluate(e, r)
                nxt.append(r)
            out = nxt
        elif op[0] == "mv-expand":
            nxt = []
            for r in out:
                v = evaluate(op[2], r)
                for x in (v if isinstance(v, list) else [v] if v is not None else []):
                    r2 = dict(r)
                    r2[op[1]] = x
                    nxt.append(r2)
            out = nxt
        elif op[0] == "order":
            for e, desc in reversed(op[1]):
                out.sort(key=lambda r: sort_key(evaluate(e, r)), reverse=desc)
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
