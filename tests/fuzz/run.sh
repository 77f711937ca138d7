#!/bin/sh
# Run libFuzzer targets for a bounded time each (make fuzz).
#   tests/fuzz/run.sh BUILD SECONDS TARGET...
# Each target starts from its committed corpus (tests/fuzz/corpus/<t>, read
# only) plus what earlier runs found (BUILD/corpus/<t>, where new inputs go).
# A crash, leak, sanitizer report, timeout or out-of-memory stops the target,
# leaves the input in BUILD/artifacts/ and makes this script fail.
build=$1 secs=$2
shift 2
bad=""
for t in "$@"; do
    bin="$build/fuzz/fuzz_$t"
    [ -x "$bin" ] || { echo "fuzz: $bin not built"; bad="$bad $t"; continue; }
    mkdir -p "$build/corpus/$t" "$build/artifacts"
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    log="$build/fuzz-$t.log"
    echo "== fuzz $t for ${secs}s (log: $log)"
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$t-" $dict "$build/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    grep -E '^#[0-9]+.*DONE|^stat::number_of_executed_units|^stat::peak_rss_mb|^Done [0-9]+ runs' "$log" | sed 's/^/   /'
    if [ $rc -ne 0 ]; then
        echo "   fuzz $t FAILED (exit $rc):"
        grep -E 'ERROR|runtime error|invariant failed|Test unit written|SUMMARY' "$log" | head -n 8 | sed 's/^/   /'
        bad="$bad $t"
    fi
done
[ -z "$bad" ] || { echo "fuzz findings in:$bad"; exit 1; }
echo "== fuzz: no findings"
