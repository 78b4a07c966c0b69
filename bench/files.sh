#!/bin/sh
# files.sh - 4 KiB random reads at queue depth 32 over a 1 GiB file:
# coreio (bench/fileio, on io_uring and on epoll) against fio's io_uring
# engine on the same file, all pinned to the same CPU, from the page cache
# (buffered, the file read in first) and with O_DIRECT (the file on a disk,
# not tmpfs).  Repeats are interleaved, the order rotating.  Appends every
# run to bench/results/<date>-files.csv and rewrites the "Files" section of
# docs/benchmarks.md.  `make bench-files` builds and calls this.
#
#   bench/files.sh [BUILD_DIR]          default build-bench
#
#   FILES_SECONDS [3]   measured seconds of each run (after 0.3 s warm-up)
#   FILES_REPEATS [3]   interleaved repeats
#   FILES_CPU     [0]   the CPU every run is pinned to
#   FILES_SIZE_MB [1024] the file's size; the file is BUILD_DIR/files-<size>m.dat
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
secs=${FILES_SECONDS:-3}
repeats=${FILES_REPEATS:-3}
cpu=${FILES_CPU:-0}
size_mb=${FILES_SIZE_MB:-1024}
depth=32
warmup_ms=300
fileio=$build/bench/fileio
file=$build/files-${size_mb}m.dat
doc=$root/docs/benchmarks.md
t_begin=$(date +%s)

for t in fio jq taskset; do
	command -v $t >/dev/null || {
		echo "files.sh: $t missing; run scripts/deps.sh bench (make bench-files does)" >&2
		exit 1
	}
done
[ -x "$fileio" ] || {
	echo "files.sh: $fileio missing; run make bench-files" >&2
	exit 1
}

# O_DIRECT must reach a disk: refuse tmpfs and the like.
fstype=$(stat -f -c %T "$build")
case $fstype in
tmpfs | ramfs | overlayfs | fuseblk | nfs*)
	echo "files.sh: $build is on $fstype; O_DIRECT needs a disk-backed file system" >&2
	exit 1
	;;
esac
mnt=$(df --output=target "$build" | tail -n 1)
dev=$(df --output=source "$build" | tail -n 1)
fsname=$(awk -v m="$mnt" '$2 == m { t = $3 } END { print t }' /proc/mounts)

# The file: real blocks (written, not fallocated: unwritten extents read
# back as zeros without touching the disk).  Kept between runs.
want=$((size_mb * 1048576))
have=$(stat -c %s "$file" 2>/dev/null || echo 0)
if [ "$have" -ne "$want" ]; then
	echo "files.sh: writing $file ($size_mb MiB)" >&2
	dd if=/dev/urandom of="$file.tmp" bs=1M count="$size_mb" status=none
	sync "$file.tmp"
	mv "$file.tmp" "$file"
fi

day=$(date -u +%Y-%m-%d)
run=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$root/bench/results"
csvrel=bench/results/$day-files.csv
csv=$root/$csvrel
header=date,run,commit,kernel,rep,mode,impl,iops,cpu_us_per_io,cpu_util,ios,seconds,depth,bs,cpu,options
[ -f "$csv" ] || echo "$header" >"$csv"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit=$commit-dirty
kernel=$(uname -r)
rows=$(mktemp)
trap 'rm -f "$rows" "$rows.section"' EXIT

# fio's io_uring engine as its defaults leave it (no registered files or
# buffers, no SQ polling, no polled completions), the page cache left as
# it is (--invalidate=0: fio would drop the file's pages first), a
# repeatable random map off (--norandommap, as coreio's generator), the
# same warm-up.  "fio-fixed" adds registered files and buffers, which
# coreio does not use.
fio_common="--name=randread --filename=$file --ioengine=io_uring --iodepth=$depth \
--rw=randread --bs=4k --numjobs=1 --time_based --runtime=$secs \
--ramp_time=${warmup_ms}ms --size=${size_mb}m --invalidate=0 --norandommap \
--randrepeat=0 --output-format=json"
fio_fixed="--registerfiles --fixedbufs"
# With O_DIRECT only: fio submitting as coreio does, every request ready
# at once in one io_uring_enter (fio's default is one per request).
fio_batch="--iodepth_batch_submit=$depth --iodepth_batch_complete_min=1"

run_fio() { # mode impl rep extra...
	mode=$1 impl=$2 rep=$3
	shift 3
	d=0
	[ "$mode" = direct ] && d=1
	# shellcheck disable=SC2086
	out=$(taskset -c "$cpu" fio $fio_common --direct=$d "$@") || {
		echo "files.sh: fio failed ($mode $impl)" >&2
		exit 1
	}
	echo "$out" | jq -r --arg pre "$day,$run,$commit,$kernel,$rep,$mode,$impl" \
		--arg tail "$depth,4096,$cpu,$*" '.jobs[0] as $j |
		($j.read.runtime / 1000) as $s |
		(($j.usr_cpu + $j.sys_cpu) / 100) as $u |
		[$pre, ($j.read.iops | floor | tostring),
		 (if $j.read.total_ios > 0 then ($u * $s * 1e6 / $j.read.total_ios * 1000 | round / 1000) else 0 end | tostring),
		 ($u * 1000 | round / 1000 | tostring), ($j.read.total_ios | tostring),
		 ($s | tostring), $tail] | join(",")'
}

run_coreio() { # mode backend rep
	mode=$1 be=$2 rep=$3
	flag=""
	[ "$mode" = direct ] && flag=--direct
	line=$(COREIO_BENCH_CPU=$cpu taskset -c "$cpu" "$fileio" --file "$file" \
		--backend "$be" --depth $depth --seconds "$secs" --warmup-ms $warmup_ms $flag) || {
		echo "files.sh: fileio failed ($mode $be)" >&2
		exit 1
	}
	echo "$line" | awk -v pre="$day,$run,$commit,$kernel,$rep,$mode" -v cpu="$cpu" '
	{
		for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		printf "%s,%s,%s,%s,%s,%s,%s,%s,4096,%s,\n", pre, f["impl"], f["iops"],
			f["cpu_us_per_io"], f["cpu_util"], f["ios"], f["seconds"], f["depth"], cpu
	}'
}

impls_buffered="fio coreio-uring fio-fixed coreio-epoll"
impls_direct="fio coreio-uring fio-fixed coreio-epoll fio-batch"
rep=1
while [ "$rep" -le "$repeats" ]; do
	for mode in buffered direct; do
		# Every buffered run reads from a full page cache.
		[ "$mode" = buffered ] && cat "$file" >/dev/null
		# Rotate the order each repeat so no one always goes first.
		eval "order=\$impls_$mode"
		# shellcheck disable=SC2086
		order=$(rotate $((rep - 1)) $order)
		for impl in $order; do
			echo "== rep $rep $mode $impl" >&2
			case $impl in
			fio) line=$(run_fio "$mode" fio "$rep") ;;
			# shellcheck disable=SC2086
			fio-fixed) line=$(run_fio "$mode" fio-fixed "$rep" $fio_fixed) ;;
			# shellcheck disable=SC2086
			fio-batch) line=$(run_fio "$mode" fio-batch "$rep" $fio_batch) ;;
			coreio-uring) line=$(run_coreio "$mode" uring "$rep") ;;
			coreio-epoll) line=$(run_coreio "$mode" epoll "$rep") ;;
			esac
			echo "$line" | tee -a "$csv" >>"$rows"
			echo "$line" >&2
		done
	done
	rep=$((rep + 1))
done
elapsed=$(($(date +%s) - t_begin))

cpu_model=$(cpu_model)
fio_version=$(fio --version)
sched=$(cat "/sys/block/$(basename "$dev")/queue/scheduler" 2>/dev/null || echo unknown)
cmd="make bench-files"
[ -n "${FILES_SECONDS:-}" ] && cmd="FILES_SECONDS=$secs $cmd"
[ -n "${FILES_REPEATS:-}" ] && cmd="FILES_REPEATS=$repeats $cmd"

awk -F, -v cmd="$cmd" -v cpu_model="$cpu_model" -v ncpu="$(nproc)" \
	-v kernel="$kernel" -v commit="$commit" -v run="$run" -v secs="$secs" \
	-v repeats="$repeats" -v pin="$cpu" -v fio_version="$fio_version" \
	-v fsname="$fsname" -v dev="$dev" -v mnt="$mnt" -v size_mb="$size_mb" \
	-v sched="$sched" -v csvname="$csvrel" -v elapsed="$elapsed" \
	-v fio_common="$(echo "$fio_common" | sed "s|$file|FILE|")" \
	-v fio_fixed="$fio_fixed" -v fio_batch="$fio_batch" '
function sort(a, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
}
function median(a, n) { sort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function stats(mode, impl,    i, n, v, c) {
	n = 0
	for (i = 1; i <= nrows; i++)
		if (M[i] == mode && I[i] == impl) { n++; v[n] = IOPS[i]; c[n] = CPU[i] }
	cnt = n
	if (!n) return 0
	med_iops = median(v, n); best_iops = v[n]
	med_cpu = median(c, n); best_cpu = c[1]
	return 1
}
function paired(mode, num, den,    i, j, n, r) {
	n = 0
	for (i = 1; i <= nrows; i++)
		if (M[i] == mode && I[i] == num)
			for (j = 1; j <= nrows; j++)
				if (M[j] == mode && I[j] == den && REP[j] == REP[i]) { n++; r[n] = IOPS[i] / IOPS[j] }
	return n ? median(r, n) : 0
}
{ nrows++; REP[nrows] = $5; M[nrows] = $6; I[nrows] = $7; IOPS[nrows] = $8; CPU[nrows] = $9; UTIL[nrows] = $10 }
END {
	nimpls = split("fio fio-fixed fio-batch coreio-uring coreio-epoll", impls, " ")
	split("buffered direct", modes, " ")
	mname["buffered"] = "page cache (buffered, file read in first)"
	mname["direct"] = "O_DIRECT (disk)"
	print "## Files"
	print ""
	printf "Measured %s on %s (%d CPUs), Linux %s, commit %s; %s.\n", run, cpu_model, ncpu, kernel, commit, fio_version
	printf "File: %d MiB of random bytes on %s (%s on %s, I/O scheduler: %s).\n", size_mb, mnt, fsname, dev, sched
	printf "Every run pinned to CPU %s (taskset), %s s measured after a 0.3 s warm-up,\n", pin, secs
	printf "%d repeat(s) interleaved (the order rotating each repeat); %d s in all.\n", repeats, elapsed
	print ""
	print "Command: `" cmd "`"
	print ""
	print "4 KiB random reads, queue depth 32, one thread. `coreio-uring` /"
	print "`coreio-epoll`: `bench/fileio`, 32 tasks each looping `cio_pread()` of a"
	print "random 4 KiB-aligned block (xorshift64*) into its own buffer. `fio`:"
	print "fio'"'"'s io_uring engine with its defaults (no registered files or"
	print "buffers, no SQ polling, no polled completions): the same system calls"
	print "coreio can make. `fio-fixed`: the same plus registered files and buffers"
	print "(`" fio_fixed "`), which coreio does not use. `fio-batch` (O_DIRECT"
	print "only): fio submitting the way coreio does, all requests ready at once in"
	print "one `io_uring_enter` (`" fio_batch "`); fio'"'"'s default is"
	print "one `io_uring_enter` per request. CPU per I/O is user +"
	print "system time of the process (coreio: getrusage over the window, its"
	print "blocking pool included; fio: its job'"'"'s usr_cpu + sys_cpu) over the I/Os"
	print "done. Kernel threads (io-wq workers, interrupts) are in neither."
	print ""
	print "### Against fio (same run)"
	print ""
	print "| Mode | coreio | IOPS ratio, medians | best / best | median of per-repeat ratios | Target | Met |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	for (m = 1; m <= 2; m++)
		for (k = 4; k <= 5; k++) {
			if (!stats(modes[m], "fio")) continue
			fm = med_iops; fb = best_iops
			if (!stats(modes[m], impls[k])) continue
			r = med_iops / fm
			tgt = impls[k] == "coreio-uring" ? ">= 0.95x" : "(none)"
			met = impls[k] == "coreio-uring" ? (r >= 0.95 ? "yes" : "**no**") : ""
			printf "| %s | %s | %.2fx | %.2fx | %.2fx | %s | %s |\n", mname[modes[m]], impls[k], r, best_iops / fb, paired(modes[m], impls[k], "fio"), tgt, met
		}
	print ""
	print "### Figures"
	print ""
	print "| Mode | Implementation | Median IOPS | Best IOPS | Median CPU µs/IO | Best CPU µs/IO | Runs |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	for (m = 1; m <= 2; m++)
		for (k = 1; k <= nimpls; k++)
			if (stats(modes[m], impls[k]))
				printf "| %s | %s | %d | %d | %.3f | %.3f | %d |\n", modes[m], impls[k], med_iops, best_iops, med_cpu, best_cpu, cnt
	print ""
	print "Every run (IOPS / CPU µs per I/O / CPU utilisation of the pinned CPU):"
	print ""
	print "| Repeat | Mode | Implementation | IOPS | CPU µs/IO | CPU util |"
	print "| --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= nrows; i++)
		printf "| %s | %s | %s | %d | %.3f | %.2f |\n", REP[i], M[i], I[i], IOPS[i], CPU[i], UTIL[i]
	print ""
	print "The commands (FILE the file above; `--direct=1` / `--direct` for O_DIRECT):"
	print ""
	print "```sh"
	printf "taskset -c %s fio %s --direct=0\n", pin, fio_common
	printf "taskset -c %s fio %s --direct=0 %s\n", pin, fio_common, fio_fixed
	printf "taskset -c %s fio %s --direct=1 %s\n", pin, fio_common, fio_batch
	printf "COREIO_BENCH_CPU=%s taskset -c %s bench/fileio --file FILE --backend uring --depth 32 --seconds %s --warmup-ms 300\n", pin, pin, secs
	printf "COREIO_BENCH_CPU=%s taskset -c %s bench/fileio --file FILE --backend epoll --depth 32 --seconds %s --warmup-ms 300\n", pin, pin, secs
	print "```"
	print ""
	print "Raw figures, one line per run, every run kept: [" csvname "](../" csvname ")."
}' "$rows" >"$rows.section"

# Notes written by hand about what limits each side go below the table.
"$(dirname "$0")/doc-section.sh" files "bench/files.sh (make bench-files)" "$rows.section" "$doc" \
	"$root/bench/files-notes.md"
echo "files.sh: $elapsed s; runs appended to $csv; section Files of $doc rewritten" >&2
