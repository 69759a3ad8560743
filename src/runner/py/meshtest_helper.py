# meshtest_helper.py - small jobs the meshtest node runs as a slot user.
#
#   python meshtest_helper.py deps < pyproject.toml
#       print [project].dependencies, one per line; exit 2 with a one-line
#       reason on stderr when the file cannot be read.
import sys

_MAX = 1 << 20


def _deps():
    data = sys.stdin.buffer.read(_MAX + 1)
    if len(data) > _MAX:
        raise ValueError("pyproject.toml is larger than 1 MiB")
    try:
        import tomllib
    except ImportError:
        import tomli as tomllib
    doc = tomllib.loads(data.decode("utf-8"))
    project = doc.get("project", {})
    if not isinstance(project, dict):
        raise ValueError("[project] is not a table")
    deps = project.get("dependencies", [])
    if not isinstance(deps, list):
        raise ValueError("[project].dependencies is not a list")
    out = []
    for d in deps:
        if not isinstance(d, str):
            raise ValueError("[project].dependencies holds a non-string")
        d = " ".join(d.split())
        if d:
            out.append(d)
    sys.stdout.write("".join(x + "\n" for x in out))


def main():
    if len(sys.argv) != 2 or sys.argv[1] != "deps":
        sys.stderr.write("usage: meshtest_helper.py deps < pyproject.toml\n")
        return 2
    try:
        _deps()
    except Exception as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        sys.stderr.write("cannot read pyproject.toml: %s\n" % msg)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
