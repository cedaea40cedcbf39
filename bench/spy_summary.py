"""Summarise a py-spy profile recorded with `--format raw` (collapsed stacks).

    .venv/bin/py-spy record --pid PID --duration 10 --format raw --output worker.txt
    .venv/bin/python bench/spy_summary.py worker.txt --top 25 --inclusive streaming.py watch.py

Prints the functions with the most samples of their own (the innermost frame), and for
each --inclusive pattern the share of samples with a frame matching it anywhere in the
stack (e.g. a file name, a function name): where a worker's time goes, as fractions of
all the samples recorded.
"""
import argparse
import collections
import re
import sys

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def read(path):
    """[(frames, count)] from py-spy's raw output."""
    stacks = []
    with open(path) as lines:
        for line in lines:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            stacks.append((stack.split(";"), int(count)))
    return stacks


def name(frame):
    """`function (file)` without the line number, so that a function is counted once."""
    match = FRAME.match(frame)
    return f"{match['function']} ({match['file']})" if match else frame


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--inclusive", nargs="*", default=[],
                        help="patterns: share of samples with a matching frame in the stack")
    args = parser.parse_args()
    stacks = read(args.profile)
    total = sum(count for _, count in stacks)
    if not total:
        print("no samples")
        return 1
    own = collections.Counter()
    for frames, count in stacks:
        own[name(frames[-1])] += count
    print(f"{total} samples\n\n| own samples | share | function |\n|---|---|---|")
    for function, count in own.most_common(args.top):
        print(f"| {count} | {count / total:.1%} | `{function}` |")
    if args.inclusive:
        print("\n| stacks through | share |\n|---|---|")
        for pattern in args.inclusive:
            count = sum(c for frames, c in stacks if any(pattern in f for f in frames))
            print(f"| `{pattern}` | {count / total:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
