# lib.sh - shell functions the bench scripts share; sourced, not run.

# rotate N WORD...: the words, starting from the (N mod count)-th, so that
# repeats of a benchmark take turns in an order that changes each time and
# no one always goes first.
rotate() {
	k=$1
	shift
	[ $# -gt 0 ] || return 0
	k=$((k % $#))
	while [ "$k" -gt 0 ]; do
		first=$1
		shift
		set -- "$@" "$first"
		k=$((k - 1))
	done
	echo "$@"
}

# The CPU's model name, for the machine line of a report.
cpu_model() {
	sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1
}
