#!/bin/sh
# Runs one suite and adds its counts to $TALLY (a file of "passed failed" lines).
#   sh scripts/suite.sh NAME COMMAND...
# A suite's output is TAP ("ok"/"not ok" lines) and/or lines "N passed, N failed".
# A command that fails without reporting a failure counts as one failure; one that
# succeeds without reporting counts as one pass.
name=$1; shift
log=$(mktemp)
echo "== $name"
"$@" >"$log" 2>&1
status=$?
cat "$log"
pass=$(grep -cE '^ok [0-9]+' "$log")
fail=$(grep -cE '^not ok [0-9]+' "$log")
# Every "N passed, N failed" line adds its counts (a suite may run several C binaries
# and busted, as the sanitizer runs do).
for line in $(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1:\2/'); do
  pass=$((pass + ${line%%:*}))
  fail=$((fail + ${line##*:}))
done
if [ "$status" -eq 0 ] && [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then
  pass=1   # a step that reports no counts (a build, a fuzz run) counts once
fi
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then
  echo "!! $name exited with status $status"
  fail=1
fi
echo "-- $name: $pass passed, $fail failed"
[ -n "$TALLY" ] && echo "$pass $fail" >>"$TALLY"
rm -f "$log"
[ "$fail" -eq 0 ]
