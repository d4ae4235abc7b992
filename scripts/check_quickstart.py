"""Runs the README's quickstart against a running dev loop and compares what it prints.

The quickstart is the `## Quickstart` section of README.md. Its ```sh blocks are run, in order,
in one bash process (so a variable one command sets, such as `$etag`, is there for the next), in
the repository root, with stderr folded into stdout. Inside a block:

    command lines            run together as one step (a line ending in `\\` or an open quote
    more command lines       simply continues; the step is a small script)
    # → expected output      what the step must print, one `# → ` line per output line
    # a plain comment        ends the step, like a blank line; not run, not compared

A step without `# →` lines must print nothing. Blocks fenced as ```bash are not run (`make run`
itself, which the caller started already, and `make reset`).

Before comparing, both sides go through `normalise`, which masks what differs from run to run and
nothing else: ISO timestamps, ETags, durations and response times, the sweep's peak of probes in
flight, and an invocation's cache hits and misses (they depend on how long ago the cache was
filled). Status codes, messages, counts, names, health and circuit states are compared as printed.

Usage: check_quickstart.py README.md             compare; exit 1 at the first difference
       QUICKSTART_PRINT=1 check_quickstart.py …   also print every step's raw output
       QUICKSTART_UPDATE=1 check_quickstart.py …  write every step's output into README.md instead
                                                  (after an intended change; review the diff)
"""

import os
import re
import select
import subprocess
import sys
import time

ARROW = "# →"
STEP_TIMEOUT_S = 60
END = "@@quickstart-step-done@@"

MASKS = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r'"[0-9a-f]{24}"'), '"<etag>"'),
    (re.compile(r'("responseTime(?:Ewma)?":)\d+(?:\.\d+)?'), r"\1<ms>"),
    (re.compile(r'("duration_ms":)\d+'), r"\1<ms>"),
    (re.compile(r"\b(duration_ms|probes_in_flight_peak|cache_hits|cache_misses) \d+"), r"\1 <n>"),
    (re.compile(r'("probes_in_flight_peak"|"cache_hits"|"cache_misses"):\d+'), r"\1:<n>"),
]


def normalise(text):
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return [line.rstrip() for line in text.strip("\n").split("\n")] if text.strip() else []


def quickstart_steps(readme):
    """(line number, command text, expected lines) for every step of the quickstart's sh blocks."""
    lines = readme.split("\n")
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == "## Quickstart")
    except StopIteration:
        sys.exit("README.md has no '## Quickstart' section")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    steps, in_sh, command, expected, first, at = [], False, [], [], None, []

    def close():
        nonlocal command, expected, first, at
        if command:
            end_of_command = first + len(command) - 1
            steps.append((first, "\n".join(command), expected, at or [end_of_command + 0.5]))
        elif expected:
            sys.exit(f"README.md line {first}: `# →` output with no command above it")
        command, expected, first, at = [], [], None, []

    for number, line in enumerate(lines[start:end], start + 1):
        if line.startswith("```"):
            close()
            in_sh = line.strip() == "```sh" and not in_sh
            continue
        if not in_sh:
            continue
        if line.startswith(ARROW):
            if first is None:
                first = number
            expected.append(line[len(ARROW) :].removeprefix(" "))
            at.append(number)
        elif expected or not line.strip() or line.lstrip().startswith("#"):
            close()
            if line.strip() and not line.lstrip().startswith("#"):
                command, first = [line], number
        else:
            if first is None:
                first = number
            command.append(line)
    close()
    return steps


class Shell:
    def __init__(self, cwd):
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, command):
        # The newline before the marker ends output that has none (curl's JSON), without adding
        # an empty line to output that has one (stripped by normalise).
        self.process.stdin.write(f"{command}\necho; echo {END}\n")
        self.process.stdin.flush()
        # Raw reads: a buffered reader would hold lines select() cannot see.
        out, deadline = b"", time.monotonic() + STEP_TIMEOUT_S
        marker = f"\n{END}\n".encode()
        fd = self.process.stdout.fileno()
        while marker not in out:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                return out.decode(errors="replace"), f"no end within {STEP_TIMEOUT_S} s"
            chunk = os.read(fd, 65536)
            if not chunk:
                return out.decode(errors="replace"), "the shell exited"
            out += chunk
        return out[: out.index(marker) + 1].decode(errors="replace"), None

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main(readme_path):
    root = os.path.dirname(os.path.abspath(readme_path))
    with open(readme_path, encoding="utf-8") as f:
        steps = quickstart_steps(f.read())
    if len(steps) < 10:
        sys.exit(f"only {len(steps)} quickstart steps found in {readme_path}: is the parser broken?")
    show = os.environ.get("QUICKSTART_PRINT") == "1"
    update = os.environ.get("QUICKSTART_UPDATE") == "1"
    replacements = {}
    shell = Shell(root)
    try:
        for number, (line, command, expected, at) in enumerate(steps, 1):
            raw, problem = shell.run(command)
            if show:
                print(f"--- step {number} (README.md line {line})\n{command}\n{raw}", end="")
            got, want = normalise(raw), normalise("\n".join(expected))
            if update and not problem:
                shown = raw.strip("\n").split("\n") if raw.strip() else []
                replacements[at[0]] = (len([a for a in at if a == int(a)]), shown)
                continue
            if problem or got != want:
                print(f"FAIL quickstart step {number}, README.md line {line}: {problem or 'output differs'}",
                      file=sys.stderr)
                print(f"command:\n{command}\nexpected (normalised):", file=sys.stderr)
                print("\n".join(f"  {l}" for l in want) or "  (nothing)", file=sys.stderr)
                print("actual (normalised):", file=sys.stderr)
                print("\n".join(f"  {l}" for l in got) or "  (nothing)", file=sys.stderr)
                print(first_difference(want, got), file=sys.stderr)
                return 1
        if update:
            write_outputs(readme_path, replacements)
            print(f"quickstart: {len(replacements)} steps' outputs written into {readme_path}; review the diff")
            return 0
        print(f"quickstart: {len(steps)} steps, every output as README.md shows it")
        return 0
    finally:
        shell.close()


def first_difference(want, got):
    """Where long lines part: the README's answers are single JSON lines hundreds of columns wide."""
    for number, (w, g) in enumerate(zip(want, got), 1):
        if w != g:
            column = next((i for i, (a, b) in enumerate(zip(w, g)) if a != b), min(len(w), len(g)))
            start = max(column - 30, 0)
            return (f"first difference: output line {number}, column {column + 1}:\n"
                    f"  expected …{w[start:column + 40]}…\n  actual   …{g[start:column + 40]}…")
    return f"first difference: expected {len(want)} lines, got {len(got)}"


def write_outputs(readme_path, replacements):
    """QUICKSTART_UPDATE=1: each step's `# →` lines replaced by what it printed this time."""
    with open(readme_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for at in sorted(replacements, reverse=True):
        count, shown = replacements[at]
        index = int(at) if at != int(at) else at - 1  # after the command, or where the old lines were
        lines[index : index + count] = [f"{ARROW} {l}".rstrip() for l in shown]
    with open(readme_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
