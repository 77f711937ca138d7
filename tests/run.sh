#!/bin/sh
# Run every test program in a directory; each prints "N passed, N failed".
# Exit non-zero if any check failed or any program crashed.
# TEST_RUNNER, if set, prefixes each program (e.g. qemu-aarch64 for cross builds).
# Passing checks are hidden unless V=1 (make test V=1).
dir=${1:-build/tests}
total_pass=0 total_fail=0 bad=""
for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    name=$(basename "$t")
    echo "== $name"
    out=$($TEST_RUNNER "$t" 2>&1); rc=$?
    if [ -n "$V" ]; then printf '%s\n' "$out"; else printf '%s\n' "$out" | grep -v '^ok ' || true; fi
    summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s' "$summary" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(printf '%s' "$summary" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    [ -n "$p" ] || p=0
    [ -n "$f" ] || f=0
    if [ -z "$summary" ] || [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "   $name exited with status $rc without a failed check: counted as a failure"
        f=$((f + 1))
    fi
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    [ "$f" -eq 0 ] || bad="$bad $name"
done
echo "== all tests: $total_pass passed, $total_fail failed"
[ -z "$bad" ] || { echo "failing:$bad"; exit 1; }
