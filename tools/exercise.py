"""Exercise mode: a learner's copy of gradlab with a lab's solutions taken out.

Code a learner should write sits between markers, in any C file of the project:

    /* BEGIN SOLUTION lab01: the gradient step of linear and logistic regression */
    ... the solution ...
    /* END SOLUTION */

`exercise.py write 01 [07 ...] --dest exercise` copies the project's tracked files (git ls-files) into DEST and
replaces each block of the named labs by a stub that compiles and stops with "not implemented: write <function> in
<file>: <what>"; it leaves a `.exercise` file (the Makefile then relaxes the unused-variable warnings that a
removed body leaves) and EXERCISE.md, the list of what to write. `exercise.py list [LAB]` prints the blocks.
Then, in DEST: `make check-lab01` runs the lab's checks against the learner's code (make check-labs: all of them).
"""
import argparse, os, re, shutil, subprocess, sys

BEGIN = re.compile(r"^(\s*)/\* BEGIN SOLUTION lab(\d\d): (.*?) \*/\s*$")
END = re.compile(r"^\s*/\* END SOLUTION \*/\s*$")


def tracked(root):
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def blocks(root, files):
    """(path, first line, last line, lab, what, indent) of every marked block; exits on unbalanced markers"""
    found = []
    for path in files:
        if not path.endswith((".c", ".h")):
            continue
        with open(os.path.join(root, path), encoding="utf-8") as f:
            lines = f.read().split("\n")
        open_at = None
        for i, line in enumerate(lines):
            m = BEGIN.match(line)
            if m:
                if open_at is not None:
                    sys.exit(f"exercise.py: {path}:{i + 1}: BEGIN SOLUTION inside the block opened on line {open_at[0] + 1}")
                open_at = (i, m.group(2), m.group(3), m.group(1))
            elif END.match(line):
                if open_at is None:
                    sys.exit(f"exercise.py: {path}:{i + 1}: END SOLUTION without a BEGIN")
                found.append((path, open_at[0], i, open_at[1], open_at[2], open_at[3]))
                open_at = None
        if open_at is not None:
            sys.exit(f"exercise.py: {path}:{open_at[0] + 1}: BEGIN SOLUTION without an END")
    return found


def function_of(lines, at):
    """the name of the C function whose body contains line `at` (the nearest definition above it)"""
    for i in range(at, -1, -1):
        m = re.match(r"^[A-Za-z_][\w \*]*?\b(\w+)\s*\(", lines[i])
        if m and not lines[i].startswith((" ", "\t", "#", "/", "}")):
            return m.group(1)
    return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("labs", nargs="+", help="lab numbers: 01 07 09")
    w.add_argument("--dest", default="exercise")
    ls = sub.add_parser("list")
    ls.add_argument("labs", nargs="*")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = tracked(root)
    labs = [l.zfill(2) for l in a.labs]
    found = [b for b in blocks(root, files) if not labs or b[3] in labs]
    if a.cmd == "list":
        for path, first, last, lab, what, _ in found:
            print(f"lab{lab}  {path}:{first + 1}-{last + 1}  {what}")
        return
    missing = [l for l in labs if not any(b[3] == l for b in found)]
    if missing:
        sys.exit("exercise.py: no solution blocks for lab " + ", ".join(missing) + " (exercise.py list shows them)")
    dest = os.path.abspath(a.dest)
    if os.path.commonpath([dest, root]) == root and os.path.relpath(dest, root).split(os.sep)[0] not in ("exercise",):
        sys.exit(f"exercise.py: --dest {a.dest} is inside the project; use exercise/ (ignored by git) or a folder outside")
    if os.path.exists(dest):
        shutil.rmtree(dest)
    for path in files:
        src, dst = os.path.join(root, path), os.path.join(dest, path)
        if os.path.isdir(src):  # a submodule
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
    todo = []
    for path in sorted({b[0] for b in found}):
        with open(os.path.join(dest, path), encoding="utf-8") as f:
            lines = f.read().split("\n")
        for _, first, last, lab, what, indent in sorted((b for b in found if b[0] == path), key=lambda b: -b[1]):
            func = function_of(lines, first)
            msg = what.replace("\\", "\\\\").replace('"', '\\"')
            stub = (f"{indent}{{ /* TODO lab{lab}: {what} */\n"
                    f"{indent}    extern _Noreturn void gl_exercise_todo(const char *file, const char *func, const char *what);\n"
                    f"{indent}    gl_exercise_todo(__FILE__, __func__, \"{msg}\");\n"
                    f"{indent}}}")
            lines[first:last + 1] = [stub]
            todo.append((lab, path, func, what))
        with open(os.path.join(dest, path), "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    with open(os.path.join(dest, ".exercise"), "w") as f:
        f.write(" ".join(labs) + "\n")
    with open(os.path.join(dest, "EXERCISE.md"), "w") as f:
        f.write("# What to write\n\nEach item is a stub that stops with \"not implemented\" until you write it. "
                "`make check-labNN` checks your code against the expected numbers; the lab's README explains the "
                "idea. The solutions are in the main project, between BEGIN/END SOLUTION markers.\n\n")
        for lab, path, func, what in sorted(todo):
            f.write(f"- lab {lab}: {what} — `{func}` in {path} (`make check-lab{lab}`)\n")
    print(f"wrote {dest}: {len(todo)} block(s) to write for lab " + ", ".join(labs) + "; see EXERCISE.md")


if __name__ == "__main__":
    main()
