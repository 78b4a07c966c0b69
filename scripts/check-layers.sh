#!/bin/sh
# check-layers.sh - fails when a layer of the library calls one above it.
#
# Reads the symbols each object file defines and needs (nm), and the layer
# each belongs to by its directory under src/; a layer may use only those
# below it (the order in DESIGN: platform, core, driver, io, cores, sync).
# Usage: scripts/check-layers.sh BUILD_DIR
set -eu
dir=${1:?usage: check-layers.sh BUILD_DIR}
objs=$(find "$dir/CMakeFiles/coreio_obj.dir/src" -name '*.o' | sort)
[ -n "$objs" ] || { echo "check-layers: no objects under $dir" >&2; exit 2; }
rank() {
	case $1 in
	*/src/platform/*) echo 1 ;; */src/core/*) echo 2 ;;
	*/src/driver/*) echo 3 ;; */src/io/*) echo 4 ;;
	*/src/cores/*) echo 5 ;; */src/sync/*) echo 6 ;;
	*/src/ext/*) echo 7 ;; *) echo 9 ;;
	esac
}
defs=$(mktemp)
trap 'rm -f "$defs"' EXIT
for o in $objs; do
	nm --defined-only -g "$o" | awk -v o="$o" -v r="$(rank "$o")" \
		'$2 ~ /^[TDBRVW]$/ {print $3, r, o}'
done >"$defs"
bad=0
for o in $objs; do
	r=$(rank "$o")
	for s in $(nm -u "$o" | awk '{print $2}'); do
		line=$(awk -v s="$s" '$1 == s {print $2, $3; exit}' "$defs")
		[ -n "$line" ] || continue
		dr=${line%% *}
		if [ "$dr" -gt "$r" ]; then
			echo "upward call: ${o#"$dir"/CMakeFiles/coreio_obj.dir/} uses $s from ${line#* }" | sed "s|$dir/CMakeFiles/coreio_obj.dir/||"
			bad=1
		fi
	done
done
[ "$bad" = 0 ] && echo "check-layers: every layer depends only downward"
exit "$bad"
