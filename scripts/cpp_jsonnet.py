#!/usr/bin/env python3
"""The C++ `jsonnet` command, for tests: the PyPI wheel `jsonnet` (the C++ library) has no
command-line program, but its shared object exports the whole libjsonnet C API; this drives it
as cmd/jsonnet.cpp does (eval with -J/-V/--ext-*/-A/--tla-*/-e/-o/-S/-y/-m/-s/-t, and fmt), so
that kopsrs jsonnet output can be compared byte for byte.

Usage: python3 scripts/cpp_jsonnet.py [eval|fmt] [options] <filename|code>
"""
import ctypes
import os
import sys

import _jsonnet  # noqa: F401  (loads the .so into the process)

L = ctypes.CDLL(_jsonnet.__file__)
VM = ctypes.c_void_p
L.jsonnet_make.restype = VM
L.jsonnet_destroy.argtypes = [VM]
for fn in ("jsonnet_jpath_add",):
    getattr(L, fn).argtypes = [VM, ctypes.c_char_p]
for fn in ("jsonnet_ext_var", "jsonnet_ext_code", "jsonnet_tla_var", "jsonnet_tla_code"):
    getattr(L, fn).argtypes = [VM, ctypes.c_char_p, ctypes.c_char_p]
for fn in ("jsonnet_string_output", "jsonnet_fmt_indent", "jsonnet_fmt_max_blank_lines",
           "jsonnet_fmt_comment", "jsonnet_fmt_string", "jsonnet_fmt_pad_arrays",
           "jsonnet_fmt_pad_objects", "jsonnet_fmt_pretty_field_names", "jsonnet_fmt_sort_imports"):
    getattr(L, fn).argtypes = [VM, ctypes.c_int]
for fn in ("jsonnet_max_stack", "jsonnet_max_trace"):
    getattr(L, fn).argtypes = [VM, ctypes.c_uint]
# Returned buffers are char* that must be freed with jsonnet_realloc(vm, p, 0):
# keep them as c_void_p so ctypes does not convert/lose the pointer.
for fn in ("jsonnet_evaluate_snippet", "jsonnet_evaluate_snippet_multi",
           "jsonnet_evaluate_snippet_stream", "jsonnet_fmt_snippet"):
    f = getattr(L, fn)
    f.argtypes = [VM, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    f.restype = ctypes.c_void_p
L.jsonnet_realloc.argtypes = [VM, ctypes.c_void_p, ctypes.c_size_t]
L.jsonnet_realloc.restype = ctypes.c_void_p


def die(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(1)


def split_nul(vm, p):
    """Parse a NUL-separated buffer ending in an empty record (final sentinel)."""
    out, i = [], 0
    while True:
        s = ctypes.string_at(p + i)
        if not s:  # every record is non-empty (content ends in "\n"), so "" = sentinel
            break
        out.append(s)
        i += len(s) + 1
    L.jsonnet_realloc(vm, p, 0)
    return out


def var_val(arg):
    if "=" in arg:
        k, v = arg.split("=", 1)
        return k, v
    if arg not in os.environ:
        die("ERROR: environment variable %s was undefined." % arg)
    return arg, os.environ[arg]


def var_file(arg):
    if "=" not in arg:
        die('ERROR: argument not in form <var>=<file> "%s".' % arg)
    k, path = arg.split("=", 1)
    return k, path


def simplify(argv):  # -abc -> -a -b -c, like cmd/jsonnet.cpp
    r = []
    for i, a in enumerate(argv):
        if a == "--":
            return r + argv[i:]
        if len(a) > 2 and a[0] == "-" and a[1] != "-":
            r += ["-" + c for c in a[1:]]
        else:
            r.append(a)
    return r


def main(argv):
    vm = L.jsonnet_make()
    env = os.environ.get("JSONNET_PATH")
    if env:  # same order as C++: left-most JSONNET_PATH entry wins, -J beats env
        for p in reversed(env.split(":")):
            L.jsonnet_jpath_add(vm, p.encode())
    args = simplify(argv)
    cmd = "eval"
    if args and args[0] in ("eval", "fmt"):
        cmd = args.pop(0)
    exec_, out_file, multi, stream, rest = False, None, None, False, []
    i = 0

    def nxt():
        nonlocal i
        i += 1
        if i >= len(args):
            die("ERROR: expected another commandline argument.")
        return args[i]

    while i < len(args):
        a = args[i]
        if a in ("-e", "--exec"):
            exec_ = True
        elif a in ("-o", "--output-file"):
            out_file = nxt()
        elif a == "--":
            rest += args[i + 1:]
            break
        elif cmd == "eval" and a in ("-J", "--jpath"):
            d = nxt()
            L.jsonnet_jpath_add(vm, (d if d.endswith("/") else d + "/").encode())
        elif cmd == "eval" and a in ("-V", "--ext-str"):
            L.jsonnet_ext_var(vm, *[x.encode() for x in var_val(nxt())])
        elif cmd == "eval" and a == "--ext-str-file":
            k, p = var_file(nxt())
            L.jsonnet_ext_code(vm, k.encode(), ("importstr @'%s'" % p.replace("'", "''")).encode())
        elif cmd == "eval" and a == "--ext-code":
            L.jsonnet_ext_code(vm, *[x.encode() for x in var_val(nxt())])
        elif cmd == "eval" and a == "--ext-code-file":
            k, p = var_file(nxt())
            L.jsonnet_ext_code(vm, k.encode(), ("import @'%s'" % p.replace("'", "''")).encode())
        elif cmd == "eval" and a in ("-A", "--tla-str"):
            L.jsonnet_tla_var(vm, *[x.encode() for x in var_val(nxt())])
        elif cmd == "eval" and a == "--tla-str-file":
            k, p = var_file(nxt())
            L.jsonnet_tla_code(vm, k.encode(), ("importstr @'%s'" % p.replace("'", "''")).encode())
        elif cmd == "eval" and a == "--tla-code":
            L.jsonnet_tla_code(vm, *[x.encode() for x in var_val(nxt())])
        elif cmd == "eval" and a == "--tla-code-file":
            k, p = var_file(nxt())
            L.jsonnet_tla_code(vm, k.encode(), ("import @'%s'" % p.replace("'", "''")).encode())
        elif cmd == "eval" and a in ("-m", "--multi"):
            multi = nxt()
            if not multi.endswith("/"):
                multi += "/"
        elif cmd == "eval" and a in ("-y", "--yaml-stream"):
            stream = True
        elif cmd == "eval" and a in ("-S", "--string"):
            L.jsonnet_string_output(vm, 1)
        elif cmd == "eval" and a in ("-s", "--max-stack"):
            L.jsonnet_max_stack(vm, int(nxt()))
        elif cmd == "eval" and a in ("-t", "--max-trace"):
            L.jsonnet_max_trace(vm, int(nxt()))
        elif cmd == "fmt" and a in ("-n", "--indent"):
            L.jsonnet_fmt_indent(vm, int(nxt()))
        elif cmd == "fmt" and a == "--max-blank-lines":
            L.jsonnet_fmt_max_blank_lines(vm, int(nxt()))
        elif cmd == "fmt" and a == "--string-style":
            L.jsonnet_fmt_string(vm, ord(nxt()))
        elif cmd == "fmt" and a == "--comment-style":
            L.jsonnet_fmt_comment(vm, ord(nxt()))
        elif cmd == "fmt" and a in ("--pad-arrays", "--no-pad-arrays"):
            L.jsonnet_fmt_pad_arrays(vm, int(not a.startswith("--no")))
        elif cmd == "fmt" and a in ("--pad-objects", "--no-pad-objects"):
            L.jsonnet_fmt_pad_objects(vm, int(not a.startswith("--no")))
        elif cmd == "fmt" and a in ("--pretty-field-names", "--no-pretty-field-names"):
            L.jsonnet_fmt_pretty_field_names(vm, int(not a.startswith("--no")))
        elif cmd == "fmt" and a in ("--sort-imports", "--no-sort-imports"):
            L.jsonnet_fmt_sort_imports(vm, int(not a.startswith("--no")))
        elif cmd == "fmt" and a in ("-i", "--in-place", "--test"):
            die("ERROR: %s not implemented in this stand-in" % a)
        elif len(a) > 1 and a[0] == "-":
            die("ERROR: unrecognized argument: " + a)
        else:
            rest.append(a)
        i += 1
    if len(rest) != 1:
        die("ERROR: must give exactly one %s" % ("code" if exec_ else "filename"))
    name = rest[0]
    if exec_:
        code, name = name, "<cmdline>"
    elif name == "-":
        code, name = sys.stdin.read(), "<stdin>"
    else:
        with open(name, encoding="utf-8") as f:
            code = f.read()

    err = ctypes.c_int(0)
    fn = {"fmt": L.jsonnet_fmt_snippet}.get(cmd) or (
        L.jsonnet_evaluate_snippet_multi if multi else
        L.jsonnet_evaluate_snippet_stream if stream else L.jsonnet_evaluate_snippet)
    p = fn(vm, name.encode(), code.encode(), ctypes.byref(err))
    if err.value:
        sys.stderr.write(ctypes.string_at(p).decode())
        L.jsonnet_realloc(vm, p, 0)
        return 1
    out = sys.stdout if out_file is None else open(out_file, "w", encoding="utf-8")
    if cmd == "eval" and multi:
        parts = split_nul(vm, p)
        files = dict(zip(parts[0::2], parts[1::2]))
        for fname in sorted(files):  # std::map order (byte order)
            path = multi + fname.decode()
            out.write(path + "\n")
            content = files[fname]
            try:
                with open(path, "rb") as f:
                    if f.read() == content:
                        continue  # C++ does not touch unchanged files
            except OSError:
                pass
            with open(path, "wb") as f:
                f.write(content)
    elif cmd == "eval" and stream:
        docs = split_nul(vm, p)
        for d in docs:
            out.write("---\n" + d.decode())
        if docs:
            out.write("...\n")
    else:
        out.write(ctypes.string_at(p).decode())
        L.jsonnet_realloc(vm, p, 0)
    out.flush()
    L.jsonnet_destroy(vm)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
