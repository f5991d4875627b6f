#!/usr/bin/env bash
# Reads `go test -v` output on stdin, passes it through unchanged, and ends
# with one line:
#
#   integration: N passed, M failed, K skipped (top-level tests; subtests: a passed, b failed, c skipped)
#
# It exits non-zero when the input shows a failure (--- FAIL, a FAIL line,
# a panic, a build failure) or when no test passed (nothing ran, or
# everything was skipped: then nothing was checked). Run it with
# `set -o pipefail` so that go test's own status is kept too.
#
# SUMMARY_LABEL (default "integration") names the run in the last line.
set -uo pipefail

label="${SUMMARY_LABEL:-integration}"

awk -v label="$label" '
{ print; fflush() }
# Results: "--- PASS: TestX (0.01s)", indented for subtests.
match($0, /^ *--- (PASS|FAIL|SKIP): /) {
	line = $0
	indent = match(line, /[^ ]/) - 1
	sub(/^ *--- /, "", line)
	result = substr(line, 1, 4)
	split(line, f, " ")
	name = f[2]
	issub = (indent > 0 || index(name, "/") > 0)
	key = (issub ? "sub_" : "top_") result
	n[key]++
	if (result == "FAIL") {
		failed_names = failed_names "\n  " name
	}
	next
}
/^FAIL([ \t]|$)/                    { fail_line = 1 }
/^panic: /                          { fail_line = 1 }
/\[build failed\]|\[setup failed\]/ { fail_line = 1 }
END {
	tp = n["top_PASS"] + 0; tf = n["top_FAIL"] + 0; ts = n["top_SKIP"] + 0
	sp = n["sub_PASS"] + 0; sf = n["sub_FAIL"] + 0; ss = n["sub_SKIP"] + 0
	printf "\n%s: %d passed, %d failed, %d skipped (top-level tests; subtests: %d passed, %d failed, %d skipped)\n", label, tp, tf, ts, sp, sf, ss
	code = 0
	if (tf + sf > 0) {
		printf "%s: FAILED:%s\n", label, failed_names
		code = 1
	} else if (fail_line) {
		printf "%s: FAILED: the output has a FAIL, panic or build failure line outside any test result\n", label
		code = 1
	}
	if (code == 0 && tp + sp == 0) {
		if (ts + ss > 0) {
			printf "%s: NOTHING WAS CHECKED: every test was skipped\n", label
		} else {
			printf "%s: NOTHING RAN: no test result in the input\n", label
		}
		code = 2
	}
	exit code
}
'
